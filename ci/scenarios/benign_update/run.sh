#!/usr/bin/env bash
# benign_update: what a package upgrade and log rotation do to a host, in
# the private host root: library files replaced under /usr/lib (dpkg's
# write-new-then-rename), and a log rotated by rename + create. Nothing of
# it may raise an incident.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root=${PICKET_HOST_ROOT:?}
sleep 1
for i in 1 2 3; do
	printf 'ELF-ish placeholder v%d\n' "$((i + 1))" >"$root/usr/lib/libdemo/libdemo.so.1.dpkg-new"
	mv "$root/usr/lib/libdemo/libdemo.so.1.dpkg-new" "$root/usr/lib/libdemo/libdemo.so.1"
	printf 'new module %d\n' "$i" >"$root/usr/lib/libdemo/module$i.so"
done
log "replaced /usr/lib/libdemo files"
for i in 1 2 3; do
	echo "line $i" >>"$root/var/log/app/app.log"
	mv "$root/var/log/app/app.log" "$root/var/log/app/app.log.$i"
	: >"$root/var/log/app/app.log"
	gzip -f "$root/var/log/app/app.log.$i"
done
log "rotated /var/log/app/app.log three times"
sleep 3
