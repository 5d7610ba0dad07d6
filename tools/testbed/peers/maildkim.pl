#!/usr/bin/perl
# inkan test peer: Perl's Mail::DKIM (Debian libmail-dkim-perl) as an independent implementation.
#
#   maildkim.pl verify DNS_PORT FILE...     one JSON line per file: every signature's verdict
#   maildkim.pl sign KEY DOMAIN SELECTOR METHOD FILE   prints the DKIM-Signature field (rsa-sha256)
#
# Keys come only from 127.0.0.1:DNS_PORT. Mail::DKIM wants CRLF line endings.
use strict;
use warnings;
use JSON::PP;
use Net::DNS;
use Mail::DKIM::Verifier;
use Mail::DKIM::Signer;
use Mail::DKIM::DNS;

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    local $/;
    my $m = <$fh>;
    close $fh;
    $m =~ s/\r?\n/\r\n/g;
    return $m;
}

my $cmd = shift @ARGV // '';
if ($cmd eq 'verify') {
    my $port = shift @ARGV;
    Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
        nameservers => ['127.0.0.1'], port => $port, recurse => 1, tcp_timeout => 5, udp_timeout => 5));
    my $json = JSON::PP->new->canonical;
    for my $path (@ARGV) {
        my $v = Mail::DKIM::Verifier->new;
        $v->PRINT(slurp($path));
        $v->CLOSE;
        my @sigs;
        for my $s ($v->signatures) {
            push @sigs, {
                method => ($s->isa('Mail::DKIM::DkSignature') ? 'domainkeys' : 'dkim'),
                result => $s->result // '',
                reason => $s->result_detail // '',
                a => $s->algorithm // '',
                d => $s->domain // '',
                s => $s->selector // '',
            };
        }
        print $json->encode({ file => $path, signatures => \@sigs }), "\n";
    }
} elsif ($cmd eq 'sign' && @ARGV == 5) {
    my ($key, $domain, $selector, $method, $path) = @ARGV;
    my $s = Mail::DKIM::Signer->new(
        Algorithm => 'rsa-sha256', Method => $method, Domain => $domain,
        Selector => $selector, KeyFile => $key,
        Headers => 'from:to:subject:date:message-id');
    $s->PRINT(slurp($path));
    $s->CLOSE;
    print $s->signature->as_string, "\r\n";
} else {
    print STDERR "usage: maildkim.pl verify PORT FILE... | sign KEY DOMAIN SELECTOR METHOD FILE\n";
    exit 2;
}
