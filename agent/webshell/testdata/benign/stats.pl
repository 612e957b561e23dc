#!/usr/bin/perl
use strict;
use warnings;
use CGI;

my $q = CGI->new;
my $days = $q->param('days') // 7;
$days = 7 unless $days =~ /^\d+$/;
print $q->header('text/plain');
my $load = `cat /proc/loadavg`;
system('/usr/bin/logger', '-t', 'stats', 'viewed');
print "load: $load";
print "window: $days days\n";
