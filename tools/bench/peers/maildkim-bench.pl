#!/usr/bin/perl
# inkan benchmark peer: Mail::DKIM signing and verifying one message in a loop, keys in memory.
#   maildkim-bench.pl KEYFILE RECORD MESSAGE CANON SECONDS  ->  {"sign": per_s, "verify": per_s}
use strict;
use warnings;
use Time::HiRes qw(time);
use JSON::PP;
use Net::DNS;
use Mail::DKIM::Signer;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;

my ($key_file, $record, $message_file, $canon, $seconds) = @ARGV;
open(my $fh, '<:raw', $message_file) or die $!;
my $message = do { local $/; <$fh> };
close $fh;
{
    no warnings 'redefine';
    my @chunks = unpack('(A255)*', $record);
    *Mail::DKIM::DNS::query = sub {
        my ($name, $type) = @_;
        return (Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [@chunks]));
    };
}
sub sign_once {
    my $s = Mail::DKIM::Signer->new(Algorithm => 'rsa-sha256', Method => $canon, Domain => 'example.org',
        Selector => 'bench', KeyFile => $key_file, Headers => 'from:to:subject:date:message-id');
    $s->PRINT($message);
    $s->CLOSE;
    return $s->signature->as_string . "\r\n";
}
my $signed = sign_once() . $message;
sub verify_once {
    my $v = Mail::DKIM::Verifier->new;
    $v->PRINT($signed);
    $v->CLOSE;
    return $v->result;
}
die 'Mail::DKIM cannot verify its own signature: ' . verify_once() if verify_once() ne 'pass';
sub rate {
    my ($fn) = @_;
    $fn->();
    my ($n, $start) = (0, time);
    while (time - $start < $seconds) { $fn->(); $n++; }
    return $n / (time - $start);
}
print encode_json({ sign => rate(\&sign_once), verify => rate(\&verify_once) }), "\n";
