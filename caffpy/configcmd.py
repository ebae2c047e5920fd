"""caffpy config: the configuration in effect, and a caff (Perl) ~/.caffrc rewritten for caffpy."""

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
from typing import Dict, List

import configobj

from caffpy import config as configuration, perlconf
from caffpy.errors import ConfigError, UsageError


def build_config_parser() -> argparse.ArgumentParser:
    # cli imports this module, so its helpers are imported only when they are needed.
    from caffpy.cli import _ArgumentParser, _common_options
    parser = _ArgumentParser(
        prog="caffpy config",
        description="Show the configuration in effect and where each value comes from, or "
                    "write the settings of a caff (Perl) ~/.caffrc in caffpy's own format.",
        epilog="See caffrc(5).")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--show", action="store_true",
                        help="print every key with its value and where it was set: default, "
                             "a configuration file, or the command line (options of a caffpy "
                             "run given after --show, such as -m no, count as the command "
                             "line)")
    action.add_argument("--migrate", action="store_true",
                        help="write the settings caffpy takes from your caff (Perl) ~/.caffrc "
                             "as a caffpy configuration file, on standard output unless "
                             "--output is given")
    parser.add_argument("--output", metavar="FILE",
                        help="with --migrate, write to FILE; an existing FILE is kept unless "
                             "--force is given")
    parser.add_argument("--force", action="store_true",
                        help="with --migrate --output, replace FILE; when FILE is the caff file "
                             "itself, it is first saved as FILE.caff-perl")
    _common_options(parser)
    return parser


def cmd_config(argv: List[str], prompter_box: list) -> int:
    parser = build_config_parser()
    args, run_options = parser.parse_known_args(argv)
    if args.show:
        if args.output or args.force:
            parser.error("--output and --force go with --migrate, not --show")
        print(show_text(_load(args.config, run_options)), end="")
        return 0
    if run_options:
        parser.error("unrecognized arguments: %s" % " ".join(run_options))
    if args.force and not args.output:
        parser.error("--force goes with --output FILE")
    return migrate(configuration.config_files(args.config)[-1], args.output, args.force)


# -- --show ---------------------------------------------------------------------------


def _load(user_file, run_options: List[str]) -> configuration.Config:
    """The configuration a caffpy run with these options would use."""
    from caffpy.cli import _overrides, build_parser
    run_args = build_parser().parse_args(run_options)
    config = configuration.load(user_file, _overrides(run_args), require=False)
    if run_args.key_file:                     # added to the files' list, as a run does
        config.values["key-files"] += [os.path.abspath(f) for f in run_args.key_file]
        config.origins["key-files"] = "command line"
    return config


def show_text(config: configuration.Config) -> str:
    files = configuration.config_files(config.user_file)
    lines = ["# caffpy's configuration in effect; after each value, where it was set.",
             "# Files read, later ones winning: %s" % ", ".join(
                 path if os.path.exists(path) else path + " (absent)" for path in files)]
    for key, _, _ in configuration.spec_entries():
        value = config.values.get(key)
        if value is None:
            lines.append("# %s is not set" % key)
            continue
        written = value_lines(key, value)
        written[-1] += "    # %s" % config.origins.get(key, "default")
        lines += written
    return "\n".join(lines) + "\n"


def value_lines(key: str, value: object) -> List[str]:
    """key = value as configobj writes it: quoted where needed, lists comma-separated,
    several lines in triple quotes. ConfigObjError when it cannot be quoted."""
    if isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, int):
        value = str(value)
    elif isinstance(value, list) and len(value) == 1:
        value = value[0]        # a list of one reads the same without configobj's "item,"
    single = configobj.ConfigObj(list_values=True, interpolation=False)
    single[key] = value
    return single.write()


# -- --migrate ------------------------------------------------------------------------


def migrate(source: str, output: str, force: bool) -> int:
    if not os.path.exists(source):
        raise ConfigError("%s does not exist: there is no caff configuration to migrate"
                          % source)
    with open(source, encoding="utf-8", errors="replace") as handle:
        if not perlconf.looks_like_perl(handle.read().splitlines()):
            print("caffpy: %s is already in caffpy's format; nothing to migrate" % source,
                  file=sys.stderr)
            return 0
    values, reading = configuration.read_perl_file(source)
    text = migrated_text(source, values, reading)
    if not output:
        sys.stdout.write(text)
        return 0
    output = os.path.abspath(os.path.expanduser(output))
    if os.path.exists(output):
        if not force:
            raise UsageError("%s exists; give --force to replace it" % output)
        if os.path.samefile(output, source):
            _keep_original(source)
    _write_private(output, text)
    print("caffpy: wrote %s; check it, then run caffpy config --show --config %s"
          % (output, output), file=sys.stderr)
    return 0


def migrated_text(source: str, values: Dict[str, object], reading) -> str:
    """The configobj file for a caff file's settings; it reads back to exactly values."""
    body, written, not_written = [], {}, []
    for key, _, _ in configuration.spec_entries():      # caffrc(5)'s order
        if key in values:
            try:
                body += value_lines(key, values[key])
                written[key] = values[key]
            except configobj.ConfigObjError:
                not_written.append("%s: holds both ''' and \"\"\", which configobj cannot "
                                   "quote" % key)
    header = ["# caffpy configuration, written by `caffpy config --migrate` from the caff",
              "# (Perl) file %s; see caffrc(5)." % source]
    skipped = ["line %d%s: %s" % (item.line, " " + item.key if item.key else "", item.reason)
               for item in reading.not_taken] + not_written
    notes = ["line %d %s: %s" % (item.line, item.key, item.reason) for item in reading.notes]
    for title, items in (("Not taken from it:", skipped), ("Notes:", notes)):
        if items:
            header += ["#", "# " + title]
            for item in items:
                header += textwrap.wrap(item, 76, initial_indent="# - ",
                                        subsequent_indent="#   ", break_on_hyphens=False,
                                        break_long_words=False)
    text = "\n".join(header + [""] + body) + "\n"
    _check_reads_back(text, written)
    return text


def _check_reads_back(text: str, values: Dict[str, object]) -> None:
    # The promise of --migrate: caffpy reads the new file exactly as it read the old one.
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "caffrc")
        _write_private(path, text)
        again = configuration.read_file(path)
    if again != values:
        raise RuntimeError("the migrated configuration reads back differently: %r != %r"
                           % (again, values))


def _keep_original(source: str) -> None:
    backup = source + ".caff-perl"
    if os.path.exists(backup):
        raise UsageError("%s exists; move it away before replacing %s" % (backup, source))
    shutil.copy2(source, backup)
    print("caffpy: saved the caff file %s as %s" % (source, backup), file=sys.stderr)


def _write_private(path: str, text: str) -> None:
    """Write through a new file in the same directory, so a failure leaves path as it was."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".caffrc-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
