#!/usr/bin/perl
# inkan test peer: DomainKeys (RFC 4870) with Perl's Mail::DKIM (Debian libmail-dkim-perl).
#
# Mail::DKIM has no DomainKeys signer class of its own: its Signer takes a signing
# policy, and the policy here adds a Mail::DKIM::DkSignature (and, on request, a
# DKIM-Signature too, so that one message carries both kinds).
#
#   maildkim-domainkeys.pl sign [options] KEY DOMAIN SELECTOR FILE
#       --canon simple|nofws   DomainKeys canonicalization (default simple)
#       --headers a:b:c        write h= with these names (default: no h=, all headers signed)
#       --dkim                 also add a DKIM-Signature (rsa-sha256, relaxed/relaxed, same key and selector)
#     Prints the new signature fields, each ending in CRLF, in the order in which they
#     go on top of the message (the DKIM-Signature above the DomainKey-Signature).
#
#   maildkim-domainkeys.pl verify DNS_PORT FILE...
#     One JSON line per file, every signature Mail::DKIM's default (non-strict)
#     Verifier saw: method, result, detail, identity and identity source (DomainKeys).
#
# Keys come only from 127.0.0.1:DNS_PORT. Mail::DKIM wants CRLF line endings.
use strict;
use warnings;
use Getopt::Long qw(GetOptionsFromArray);
use JSON::PP;
use Net::DNS;
use Mail::DKIM::Signer;
use Mail::DKIM::Signature;
use Mail::DKIM::DkSignature;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;

sub read_message {
    my ($path) = @_;
    open( my $fh, '<:raw', $path ) or die "$path: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    # Unix files may have bare LF line ends; Mail::DKIM reads CRLF only.
    $text =~ s/\r?\n/\r\n/g;
    return $text;
}

sub usage {
    print STDERR "usage: maildkim-domainkeys.pl sign [--canon simple|nofws] [--headers LIST] [--dkim] KEY DOMAIN SELECTOR FILE\n"
      . "       maildkim-domainkeys.pl verify DNS_PORT FILE...\n";
    exit 2;
}

sub sign_command {
    my @args  = @_;
    my $canon = 'simple';
    my $headers;
    my $with_dkim = 0;
    GetOptionsFromArray( \@args, 'canon=s' => \$canon, 'headers=s' => \$headers, 'dkim' => \$with_dkim )
      or usage();
    usage() unless @args == 4;
    my ( $key_file, $domain, $selector, $path ) = @args;
    die "unknown canonicalization $canon\n" unless $canon eq 'simple' || $canon eq 'nofws';

    my $policy = sub {
        my ($signer) = @_;
        if ($with_dkim) {
            $signer->add_signature(
                Mail::DKIM::Signature->new(
                    Algorithm => 'rsa-sha256',
                    Method    => 'relaxed/relaxed',
                    Headers   => $signer->headers,
                    Domain    => $domain,
                    Selector  => $selector,
                )
            );
        }
        my %dk = (
            Algorithm => 'rsa-sha1',
            Method    => $canon,
            Domain    => $domain,
            Selector  => $selector,
        );
        $dk{Headers} = $headers if defined $headers && $headers ne '';
        $signer->add_signature( Mail::DKIM::DkSignature->new(%dk) );
        return 1;
    };

    my $signer = Mail::DKIM::Signer->new( Policy => $policy, KeyFile => $key_file );
    $signer->PRINT( read_message($path) );
    $signer->CLOSE;
    my @fields = map { $_->as_string } $signer->signatures;
    die "Mail::DKIM produced no signature\n" unless @fields;
    for my $field (@fields) {
        $field =~ s/\r?\n/\r\n/g;
        print $field, "\r\n";
    }
}

sub verify_command {
    my ( $port, @files ) = @_;
    usage() unless defined $port && $port =~ /^\d+$/;
    Mail::DKIM::DNS::resolver(
        Net::DNS::Resolver->new(
            nameservers => ['127.0.0.1'],
            port        => $port,
            recurse     => 1,
            retry       => 1,
            tcp_timeout => 5,
            udp_timeout => 5,
        )
    );
    my $json = JSON::PP->new->canonical;
    for my $path (@files) {
        my $verifier = Mail::DKIM::Verifier->new;
        $verifier->PRINT( read_message($path) );
        $verifier->CLOSE;
        my @signatures;
        for my $s ( $verifier->signatures ) {
            my $is_dk = $s->isa('Mail::DKIM::DkSignature');
            my %entry = (
                method => ( $is_dk ? 'domainkeys' : 'dkim' ),
                result => $s->result // '',
                detail => $s->{verify_details} // '',
                a      => $s->algorithm // '',
                d      => $s->domain // '',
                s      => $s->selector // '',
            );
            if ($is_dk) {
                $entry{identity}        = $s->identity        // '';
                $entry{identity_source} = $s->identity_source // '';
            }
            push @signatures, \%entry;
        }
        print $json->encode( { file => $path, signatures => \@signatures } ), "\n";
    }
}

my $command = shift @ARGV // '';
if ( $command eq 'sign' ) {
    sign_command(@ARGV);
}
elsif ( $command eq 'verify' ) {
    verify_command(@ARGV);
}
else {
    usage();
}
