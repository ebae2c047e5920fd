"""caff's Perl ~/.caffrc, read without running Perl (caffpy/perlconf.py), and UTF-8 mail text.

The ground truth is Perl itself: tests/data/caffrc-corpus/expected/NN.json is
what Perl 5.36 read from each of 42 real files as caff 2.11 loads them, and
tests/data/caffrc-templates/rendered.json is what the real Text::Template made
of the mail templates (see render.pl there). Neither Perl nor Text::Template
is needed to run these tests.
"""

import email
import email.policy
import glob
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from caffpy import config, message, perlconf
from caffpy.errors import ConfigError
from conftest import DATA, decrypt, new_caff, new_dir, participant

CORPUS = os.path.join(DATA, "caffrc-corpus")
HOME = "/home/caffuser"          # the HOME the expected files were made with
NUMBERS = sorted(os.path.basename(p)[:2] for p in glob.glob(os.path.join(CORPUS, "*.caffrc")))
RENDERED = json.load(open(os.path.join(DATA, "caffrc-templates", "rendered.json"),
                          encoding="utf-8"))


def corpus_text(number):
    with open(os.path.join(CORPUS, number + ".caffrc"), encoding="utf-8") as handle:
        return handle.read()


def expected(number):
    with open(os.path.join(CORPUS, "expected", number + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


LOADED = [n for n in NUMBERS if expected(n)["perl_eval_ok"]]
NOT_LOADED = [n for n in NUMBERS if not expected(n)["perl_eval_ok"]]


def test_the_corpus_is_all_there():
    assert len(NUMBERS) == 42 and NOT_LOADED == ["33", "38"]


# -- the corpus: what Perl read, read the same way -------------------------------------------

@pytest.mark.parametrize("number", LOADED)
def test_reader_evaluates_the_file_as_perl_does(number):
    evaluation = perlconf.evaluate(corpus_text(number), HOME)
    want = expected(number)
    assert {key: value for key, (value, _) in evaluation.config.items()} == want["CONFIG"]
    env = {name: "ARRAY(0x...)" if isinstance(value, list) else value
           for name, (value, _) in evaluation.env.items()}
    assert env == want["ENV_changed"]
    assert evaluation.skipped == []


@pytest.mark.parametrize("number", NOT_LOADED)
def test_files_perl_cannot_load_give_none_of_the_required_keys(number):
    # 33 needs environment variables and `//`/die, 38 escapes its $: caff dies on both.
    reading = perlconf.read(corpus_text(number), HOME)
    assert not set(reading.values) & {"owner", "email", "keyid"}
    assert {"owner", "email", "keyid"} <= {item.key for item in reading.not_taken}


def perl_truth(value):
    return value not in (None, "", "0", 0, 0.0)


def caffpy_form(key, value):
    """What caffpy must take for a caff setting of this Perl value (see caffrc(5))."""
    kind = perlconf.SAME_KEYS[key]
    if key == "local-user":
        items = value if isinstance(value, list) else re.split(r"\s*,\s*", value)
        return [item for item in items if not re.fullmatch(r"(0x)?[0-9A-Fa-f]{8}", item)]
    if kind == "list":
        return [str(item) for item in (value if isinstance(value, list) else [value])]
    if kind == "boolean":
        return perl_truth(value)
    if kind == "integer":
        return int(value)
    return str(value)


@pytest.mark.parametrize("number", LOADED)
def test_every_value_taken_is_perls_value(number):
    reading = perlconf.read(corpus_text(number), HOME)
    want = expected(number)
    assert reading.values, "nothing taken"
    for key, value in reading.values.items():
        source = reading.sources[key]
        if source == perlconf.PERL_MAILERS:
            assert key == "sendmail"
            assert "sendmail:" + value == want["ENV_changed"]["PERL_MAILERS"]
        elif key == "mail-template":        # checked against Text::Template below
            assert "corpus-" + number in RENDERED
        else:
            assert source == key
            assert value == caffpy_form(key, want["CONFIG"][key]), key


@pytest.mark.parametrize("number", NUMBERS)
def test_every_setting_perl_read_is_taken_or_reported(number):
    reading = perlconf.read(corpus_text(number), HOME)
    want = expected(number)
    reported = {item.key for item in reading.not_taken}
    taken = set(reading.sources.values())
    for key in want["CONFIG"]:
        assert key in taken or key in reported, key
    for name in want["ENV_changed"]:
        assert "$ENV{'%s'}" % name in taken | reported, name
    for item in reading.not_taken:
        assert item.reason and 1 <= item.line <= corpus_text(number).count("\n") + 1


@pytest.mark.parametrize("number, line, key, words", [
    ("09", 4, "local-user", "3AE04B44 is a short key ID"),
    ("11", 52, "mailer-send", "does not talk SMTP"),
    ("14", 20, "$ENV{'PERL_MAILERS'}", "ARRAY(0x"),
    ("14", 21, "mailer-send", "sendmail -oi -f"),
    ("18", 4, "gpg-sign-args", "key editor"),
    ("21", 19, "show-photos", "photo IDs"),
    ("24", 26, "mailer-send", "does not talk SMTP"),
    ("33", 4, "owner", "$ENV{'OWNER'}"),
    ("33", 18, "keyid", "split"),
    ("38", 1, "owner", "Perl refuses this line"),
])
def test_what_is_not_taken_says_why(number, line, key, words):
    reading = perlconf.read(corpus_text(number), HOME)
    assert any(item.line == line and item.key == key and words in item.reason
               for item in reading.not_taken), reading.not_taken


@pytest.mark.parametrize("number", ["11", "24"])
def test_an_smtp_password_is_never_repeated(number):
    password = {"11": "p+Ss!w0d", "24": "$password"}[number]
    assert password in corpus_text(number)
    reading = perlconf.read(corpus_text(number), HOME)
    assert password not in repr(reading)


@pytest.mark.parametrize("number", NUMBERS)
def test_caffpy_loads_exactly_the_files_caff_accepts(number, monkeypatch):
    home = new_dir()
    path = os.path.join(home, "caffrc")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(corpus_text(number))
    monkeypatch.setenv("HOME", home)
    monkeypatch.setenv(config.CONFIG_FILES_ENV, path)
    want = expected(number)
    if want["perl_eval_ok"] and not want["caff_2_11_load_config_errors"]:
        loaded = config.load()
        reading = perlconf.read(corpus_text(number), home)
        for key in reading.values:
            assert loaded.origins[key] == path
        assert loaded["owner"] == want["CONFIG"]["owner"]
        assert loaded["keyid"] == [re.sub(r"^0x", "", k).upper() for k in want["CONFIG"]["keyid"]]
    else:
        with pytest.raises(ConfigError) as error:
            config.load()
        assert path in str(error.value)


def test_the_warning_lists_what_was_and_was_not_taken(caplog):
    path = os.path.join(new_dir(), "caffrc")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(corpus_text("16"))
    config.read_file(path)
    config.read_file(path)                      # the same file again: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "%s is a caff configuration (Perl)" % path in warnings[0]
    assert "taken: owner, email, bcc, keyid, local-user, sendmail (from $ENV{'PERL_MAILERS'})" \
        in warnings[0]
    assert "not taken: line 7 mailer-send:" in warnings[0]
    assert "caffpy config --migrate" in warnings[0]


def test_a_wrong_value_names_the_perl_line():
    path = os.path.join(new_dir(), "caffrc")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("$CONFIG{'owner'} = 'A';\n\n$CONFIG{'mail'} = 'sometimes';\n")
    with pytest.raises(ConfigError, match=r"line 3: key 'mail'"):
        config.read_file(path)


# -- the Perl forms, one by one (each expectation was checked against perl 5.36) -------------

@pytest.mark.parametrize("text, values", [
    ("$CONFIG{'owner'} = q{Jane {the} \\} Doe};", {"owner": "Jane {the} } Doe"}),
    ("$CONFIG{'owner'} = 'it\\'s \\\\ \\d';", {"owner": "it's \\ \\d"}),
    ("$CONFIG{ owner } = \"J\\x41ne\\t\\x{263A}\\$\\@\";", {"owner": "JAne\t\u263a$@"}),
    ("$CONFIG{'caffhome'} = $ENV{'HOME'}.'/.caff';", {"caffhome": "/home/u/.caff"}),
    ("$CONFIG{'caffhome'} = \"$ENV{HOME}/c\";", {"caffhome": "/home/u/c"}),
    ("$CONFIG{'keyid'} = [ qw{A B}, qw(C), 'D', \"E\", ];", {"keyid": ["A", "B", "C", "D", "E"]}),
    ("$CONFIG{'keyid'} = 'A';", {"keyid": ["A"]}),
    ("$CONFIG{'export-sig-age'} = 24*60*60;", {"export-sig-age": 86400}),
    ("$CONFIG{'export-sig-age'} = (1 + 2) * 3 - 0x10 / 4 + 1_000 + 010;",
     {"export-sig-age": 1013}),
    ("$CONFIG{'export-sig-age'} = '3600';", {"export-sig-age": 3600}),
    ("$CONFIG{'email'} = 'a@b.org';\n$CONFIG{'bcc'} = $CONFIG{'email'};",
     {"email": "a@b.org", "bcc": "a@b.org"}),
    ("$CONFIG{'no-sign'} = 0; $CONFIG{'no-download'} = 'true'; $CONFIG{'ask-sign'} = '0.0';"
     " $CONFIG{'keys-from-gnupg'} = '';",
     {"no-sign": False, "no-download": True, "ask-sign": True, "keys-from-gnupg": False}),
    ("$CONFIG{'no-sign'} = '0'; $CONFIG{'no-download'} = 1 - 1.0; $CONFIG{'ask-sign'} = '00';",
     {"no-sign": False, "no-download": False, "ask-sign": True}),
    ("$CONFIG{'local-user'} = 'AAAAAAAAAAAAAAAA, 0xBBBBBBBBBBBBBBBB,CCCCCCCCCCCCCCCC';",
     {"local-user": ["AAAAAAAAAAAAAAAA", "0xBBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCC"]}),
    ("use strict;\nuse warnings;\n# $CONFIG{'owner'} = <<'EOM' {$key} it's\n"
     "$CONFIG{'owner'} = 'A'  # a comment\n;\n1;\n", {"owner": "A"}),
    ("$CONFIG{'owner'} = 'A'", {"owner": "A"}),              # no ; at the end of the file
    ("$CONFIG{'owner'} = '山田 太郎';", {"owner": "山田 太郎"}),
    ("$ENV{'PERL_MAILERS'} = 'smtp:x;sendmail:'.$ENV{'HOME'}.'/bin/msmtp';",
     {"sendmail": "/home/u/bin/msmtp"}),
    ("$CONFIG{'mail-subject'} = <<EOM . <<'RAW';\nHome $ENV{'HOME'}\\tend\nEOM\n$x {y}\nRAW\n"
     "$CONFIG{'owner'} = <<\"X\";\nq \\$5\nX\n",
     {"mail-subject": "Home /home/u\tend\n$x {y}\n", "owner": "q $5\n"}),
])
def test_perl_forms(text, values):
    reading = perlconf.read(text, "/home/u")
    assert reading.values == values
    assert reading.not_taken == []


@pytest.mark.parametrize("text, key, words", [
    ("$CONFIG{'email'} = \"me@example.org\";", "email", "array interpolated"),
    ("$CONFIG{'owner'} = $ENV{'USER'};", "owner", "$ENV{'USER'}"),
    ("$CONFIG{'owner'} = 'a' x 2;", "owner", "x 2"),
    ("$CONFIG{'owner'} //= 'a';", "owner", "not a plain assignment"),
    ("$CONFIG{'owner'} = $x;", "owner", "$x"),
    ("$CONFIG{'owner'} = \"\\u$x\";", "owner", "\\u"),
    ("$CONFIG{'keyid'} = [ map { uc } qw{a} ];", "keyid", "map"),
    ("$CONFIG{'export-sig-age'} = 1 / 0;", "export-sig-age", "division by zero"),
    ("$CONFIG{'export-sig-age'} = 'a day' * 2;", "export-sig-age", "not a number"),
    ("$CONFIG{'owner'} = undef;", "owner", "undef"),
    ("$CONFIG{'owner'} = [ 'A' ];", "owner", "array reference"),
    ("$CONFIG{'colour'} = 'red';", "colour", "not a caff setting"),
    ("$CONFIG{'no-mail'} = 1;", "no-mail", "mail = no"),
    ("$ENV{'GNUPGHOME'} = '/g';", "$ENV{'GNUPGHOME'}", "in your shell"),
    ("$ENV{'PERL_MAILERS'} = 'sendmail:/usr/bin/msmtp -a x';", "$ENV{'PERL_MAILERS'}",
     "without arguments"),
])
def test_perl_that_is_not_taken(text, key, words):
    reading = perlconf.read(text, "/home/u")
    assert key not in reading.values
    assert [item.key for item in reading.not_taken] == [key]
    assert words in reading.not_taken[0].reason


def test_other_statements_are_reported_and_the_rest_is_still_read():
    text = ("my $name = 'A';\nif ($x) { $CONFIG{'owner'} = 'B'; }\n"
            "$CONFIG{'owner'} = $ENV{'NAME'};\n$CONFIG{'bcc'} = $CONFIG{'owner'};\n"
            "$CONFIG{'email'} = 'e@example.org';\n")
    reading = perlconf.read(text, "/home/u")
    assert reading.values == {"email": "e@example.org"}
    assert [(item.line, item.key) for item in reading.not_taken] == \
        [(1, ""), (2, "owner"), (3, "owner"), (4, "bcc")]
    assert "could not read (line 3)" in reading.not_taken[-1].reason


def test_a_string_never_closed_stops_the_reading_and_says_so():
    text = "$CONFIG{'owner'} = 'never closed;\n$CONFIG{'email'} = 'a@b.org';\n1;\n"
    reading = perlconf.read(text, "/home/u")
    assert reading.values == {}
    assert [(item.line, item.key) for item in reading.not_taken] == [(1, "owner"), (1, "email")]
    assert all("read no further" in item.reason for item in reading.not_taken)


def test_a_configobj_file_is_not_taken_for_perl():
    assert not perlconf.looks_like_perl(["owner = $CONFIG{'owner'}", "# $CONFIG{'x'} = 1;"])
    assert perlconf.looks_like_perl(["  $CONFIG {'owner'} = 'x';"])


PERLISH = st.sampled_from([
    "$CONFIG{'owner'}", "$CONFIG{", "$ENV{'HOME'}", "$ENV{HOME}", " = ", ";", "'", '"', "q{",
    "}", "{", "qw(", ")", "(", "[", "]", ",", "=>", "<<'EOM'", "<<EOM", "\nEOM\n", "\n", "#",
    "\\", "$", "@", "24*60", "/", "0", "-", ".", "x", "{$key}", "1;", "\\x{", "0x", "1e999",
    "9" * 30, "[" * 30, "__END__", "日本", "'mail-template'", "'local-user'", "$CONFIG{'keyid'}"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(PERLISH, st.text(max_size=5)), max_size=30))
def test_any_text_gives_a_reading_and_never_an_exception(pieces):
    text = "".join(pieces)
    reading = perlconf.read(text, "/home/u")
    lines = text.count("\n") + 1
    assert all(1 <= item.line <= lines and item.reason for item in reading.not_taken)
    assert set(reading.values) <= set(perlconf.SAME_KEYS) | {"sendmail"}


def test_mapped_keys_exist_in_caffpys_spec_with_a_matching_type():
    checks = {key: check.split("(")[0] for key, check, _ in config.spec_entries()}
    fits = {"string": ("string", "option", "force_list"), "template": ("string",),
            "list": ("force_list",), "boolean": ("boolean",), "integer": ("integer",)}
    for key, kind in perlconf.SAME_KEYS.items():
        assert checks[key] in fits[kind], key
    assert checks["sendmail"] == "string"
    assert not set(perlconf.NOT_USED) & set(checks)


# -- caff's Text::Template mail text ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RENDERED))
def test_translated_template_renders_as_text_template_does(name):
    template = perlconf.translate_template(RENDERED[name]["source"])
    for case in RENDERED[name]["renders"]:
        assert message.render_text(template, case["owner"], case["fingerprint"],
                                   case["uids"]) == case["text"]


@pytest.mark.parametrize("number", sorted(n[-2:] for n in RENDERED if n.startswith("corpus-")))
def test_corpus_templates_are_taken_translated(number):
    reading = perlconf.read(corpus_text(number), HOME)
    source = expected(number)["CONFIG"]["mail-template"]
    assert reading.values["mail-template"] == perlconf.translate_template(source)
    assert RENDERED["corpus-" + number]["source"] == source


@pytest.mark.parametrize("block", [
    "{$uids[0]}", "{join(', ', @uids)}", "{ $key =~ s/^/0x/r }", "{$fingerprint}",
    "{$OUT .= 'x'}", "{foreach $uid (@uids) { $OUT .= \"  $uid\\n\"; }}",
    "{(scalar @uids >= 2 ? 's' : ''}", "{scalar @uids >= 2 ? ' s' : ''}", "{}",
    "a \\{ b \\}", "a { b", "a } b",
])
def test_templates_with_other_perl_code_are_not_taken(block):
    text = ("$CONFIG{'owner'} = 'A';\n$CONFIG{'mail-template'} = <<'EOM';\nHi {$owner}\n%s\n"
            "EOM\n$CONFIG{'email'} = 'a@example.org';\n" % block)
    reading = perlconf.read(text, "/home/u")
    assert reading.values == {"owner": "A", "email": "a@example.org"}
    assert [(item.line, item.key) for item in reading.not_taken] == [(2, "mail-template")]
    assert "template" in reading.not_taken[0].reason


# -- UTF-8 mail text: any language, 7-bit on the wire ------------------------------------------

JAPANESE = ("こんにちは。\n\nキーサイニングパーティーでお会いできて嬉しかったです。\n"
            "鍵 $key のユーザーIDに署名しました。\n\nよろしくお願いします。\n")


def test_japanese_template_from_a_configobj_caffrc_arrives_unchanged(party):
    caff = new_caff(party, extra='mail-template = """%s"""\nmail = yes\n' % JAPANESE)
    plain = participant(party, "plain")
    status, _, err = caff.run_party(fingerprints=[plain.fingerprint])
    assert status == 0, err
    calls = caff.sendmail.sent()
    assert [c.recipient for c in calls] == plain.mailable
    for call in calls:
        assert max(call.message) < 128, "a byte that is not 7-bit ASCII on the wire"
        assert all(len(line) <= 998 for line in call.message.split(b"\n"))
        inner = decrypt(party, call.parsed())
        text_part = next(part for part in inner.walk() if part.get_content_type() == "text/plain")
        assert text_part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
        assert text_part.get_content_charset() == "utf-8"
        assert text_part.get_content() == JAPANESE.replace("$key", plain.fingerprint[-16:])


def test_japanese_owner_and_template_from_a_perl_caffrc_are_7bit_on_the_wire():
    text = ("$CONFIG{'owner'} = '山田 太郎';\n$CONFIG{'mail-subject'} = '署名した鍵 0x%k';\n"
            "$CONFIG{'mail-template'} = <<'EOM';\n{$owner}です。鍵 {$key} のユーザーID"
            "{(scalar @uids >= 2 ? 's' : '')}:\n{foreach $uid (@uids) {\n"
            "    $OUT .= \"\\t\".$uid.\"\\n\";\n};}以上です。\nEOM\n")
    values = perlconf.read(text, "/home/u").values
    fingerprint = "0123456789ABCDEF0123456789ABCDEF01234567"
    uids = ["山田 太郎 <taro@example.jp>", "Yamada Taro <taro@example.org>"]
    body = message.render_text(values["mail-template"], values["owner"], fingerprint, uids)
    assert body == ("山田 太郎です。鍵 89ABCDEF01234567 のユーザーIDs:\n"
                    "\t山田 太郎 <taro@example.jp>\n\tYamada Taro <taro@example.org>\n以上です。\n")
    wire = message.compose(body, [], values["owner"], "taro@example.org", "yamada@example.jp",
                           values["mail-subject"].replace("%k", fingerprint[-16:]))
    assert max(wire) < 128
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == "山田 太郎"
    assert parsed["Subject"] == "署名した鍵 0x89ABCDEF01234567"
    assert parsed.get_body(("plain",)).get_content() == body


def test_template_language_runs_no_code_and_substitutes_once():
    template = "$owner ${key}s $$5 $uids $unknown ${__import__} $plural"
    text = message.render_text(template, "$key", "F" * 40, ["$owner <a@b.org>"])
    assert text == "$key FFFFFFFFFFFFFFFFs $5 \t$owner <a@b.org> $unknown ${__import__} \n"


def test_a_run_with_a_caff_perl_caffrc_mails_the_translated_template(party):
    caff = new_caff(party)
    with open(caff.config, "w", encoding="utf-8") as handle:
        handle.write(
            "# .caffrc -- vim:ft=perl:\n"
            "$CONFIG{'owner'} = 'Demo Signer';\n"
            "$CONFIG{'email'} = q{signer@example.org};\n"
            "$CONFIG{'keyid'} = [ qw{%s} ];\n"
            "$CONFIG{'caffhome'} = '%s';\n"
            "$ENV{'PERL_MAILERS'} = 'sendmail:%s';\n"
            "$CONFIG{'mailer-send'} = [ 'sendmail', '-f', $CONFIG{'email'}, '-it' ];\n"
            "$CONFIG{'mail-template'} = << 'EOM';\n"
            "Hi, user id{(scalar @uids >= 2 ? 's' : '')}\n"
            "{foreach $uid (@uids) {\n    $OUT .= \"\\t\".$uid.\"\\n\";\n};}"
            "of your key {$key}, $5.\n{$owner}\nEOM\n1;\n"
            % (" ".join(party.signers), caff.caffhome, caff.sendmail.path))
    plain = participant(party, "plain")
    status, _, err = caff.run_party(fingerprints=[plain.fingerprint])
    assert status == 0, err
    assert err.count("is a caff configuration (Perl)") == 1
    assert "sendmail (from $ENV{'PERL_MAILERS'})" in err and "line 7 mailer-send" in err
    calls = caff.sendmail.sent()
    assert [c.recipient for c in calls] == plain.mailable
    for call in calls:
        text = decrypt(party, call.parsed()).get_body(("plain",)).get_content()
        first, uid, rest = text.split("\n", 2)
        assert first == "Hi, user id" and uid.startswith("\t") and call.recipient in uid
        assert rest == "of your key %s, $5.\nDemo Signer\n" % plain.fingerprint[-16:]
