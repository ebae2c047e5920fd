#!/usr/bin/perl
# Fills caff mail templates in with the real Text::Template, the way caff 2.11
# does (fill_in with HASH => {key, uids, owner}), so that tests/test_perlconf.py
# can check caffpy's translation against Perl without needing Perl itself.
# The templates: every active mail-template of the corpus, and variants of
# caff's blocks defined below. Needs libtext-template-perl. Regenerate with
#   perl tests/data/caffrc-templates/render.pl > tests/data/caffrc-templates/rendered.json
use strict;
use warnings;
use utf8;
use File::Basename qw(dirname);
use JSON::PP;
use Text::Template;

my $here = dirname(__FILE__);
my $json = JSON::PP->new->utf8->canonical->pretty;
my %templates;

for my $file (glob "$here/../caffrc-corpus/expected/[0-9][0-9].json") {
    open my $fh, '<:raw', $file or die "$file: $!";
    my $data = $json->decode(do { local $/; <$fh> });
    my $template = $data->{CONFIG}{'mail-template'};
    next unless defined $template;
    my ($number) = $file =~ m{(\d\d)\.json$};
    $templates{"corpus-$number"} = $template;
}

# Other spellings of the blocks caff generates, with text around them that has
# a literal $, @ and backslashes (all plain text to Text::Template).
$templates{'spacing'} = <<'EOM';
Dear { $owner }-friend, user ID{ scalar @uids > 1 ? "s" : "" }:
{ foreach my $uid (@uids) { $OUT .= "\t$uid\n"; } }of key {$key;}.
EOM
$templates{'parenthesised-plural'} = <<'EOM';
ID{(scalar(@uids) >= 2 ? 's' : '')} / ID{@uids > 1 ? 's' : ''} / ID{ (@uids >= 2 ? "s" : "") }
{for $uid (@uids) {$OUT.="\t".$uid."\n"}}--
EOM
$templates{'literal-dollars'} = <<'EOM';
It costs $5 and 100%; mail me@example.org, path C:\temp\n, {$key}s and {$owner}_x.
Literally $key, $owner, $$uids and $plural.
{foreach $uid (@uids) {
    $OUT .= "\t".$uid."\n";
};}$HOME stays $HOME.
EOM
$templates{'japanese'} = <<'EOM';
こんにちは。

パーティーで確認した鍵 {$key} のユーザーID{(scalar @uids >= 2 ? 's' : '')}に署名しました:
{foreach $uid (@uids) {
    $OUT .= "\t".$uid."\n";
};}
よろしくお願いします。
{$owner}
EOM

my @cases = (
    { owner => 'Jane Doe', fingerprint => '0123456789ABCDEF0123456789ABCDEF01234567',
      uids => ['Jane Doe <jane@example.org>'] },
    { owner => '山田 太郎 $HOME', fingerprint => 'FEDCBA9876543210FEDCBA9876543210AABBCCDD',
      uids => ['Zoë Test <zoe@example.net>', 'Zoë $5 {x} <zoe@example.org>'] },
);

my %out;
for my $name (sort keys %templates) {
    $out{$name}{source} = $templates{$name};
    for my $case (@cases) {
        my $template = Text::Template->new(TYPE => 'STRING', SOURCE => $templates{$name})
            or die "$name: $Text::Template::ERROR";
        my $text = $template->fill_in(HASH => { key => substr($case->{fingerprint}, -16),
                                                uids => [ @{$case->{uids}} ],
                                                owner => $case->{owner} });
        die "$name: $Text::Template::ERROR" unless defined $text;
        push @{$out{$name}{renders}}, { %$case, text => $text };
    }
}
print $json->encode(\%out);
