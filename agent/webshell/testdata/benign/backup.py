#!/usr/bin/env python3
# Admin CGI: nightly backup trigger, behind HTTP auth.
import cgi
import os
import time

form = cgi.FieldStorage()
confirm = form.getvalue("confirm")
print("Content-Type: text/plain\n")
if confirm == "yes":
    stamp = time.strftime("%Y%m%d")
    rc = os.system("/usr/bin/tar czf /var/backups/site-" + stamp + ".tgz /var/www/site")
    print("backup finished" if rc == 0 else "backup failed")
else:
    print("add ?confirm=yes to start a backup")
