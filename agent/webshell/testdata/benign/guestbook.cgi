#!/usr/bin/perl
use strict;
use warnings;
use CGI qw(:standard escapeHTML);

my $file = '/var/lib/guestbook/entries.txt';
print header(-charset => 'utf-8');
if (request_method() eq 'POST') {
    my $name = escapeHTML(param('name') // '');
    my $msg  = escapeHTML(param('message') // '');
    open(my $fh, '>>', $file) or die "cannot open: $!";
    print $fh join("\t", time, $name, $msg), "\n";
    close $fh;
}
open(my $in, '<', $file) or die "cannot read: $!";
while (my $line = <$in>) {
    my ($t, $n, $m) = split /\t/, $line;
    print "<p><b>$n</b>: $m</p>\n";
}
