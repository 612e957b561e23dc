#!/usr/bin/env bash
# devshm: a binary dropped in /dev/shm and run — the usual fileless-ish
# staging spot. The host's /dev/shm is not touched: the copy and the run
# happen in a private mount namespace with its own tmpfs on /dev/shm, which
# disappears with the namespace. The payload is a copy of id, so its output
# proves it ran.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

payload=/dev/shm/.picket-scenario-payload
[ ! -e "$payload" ] || die "$payload exists on the host; refusing to run"

log "in a private mount namespace: tmpfs on /dev/shm, cp /usr/bin/id $payload, run it"
out=$(unshare --mount --propagation private sh -c '
	set -e
	mount -t tmpfs -o size=8m,mode=1777 picket-scenario /dev/shm
	cp /usr/bin/id "$1"
	chmod 755 "$1"
	"$1"
' devshm "$payload")
log "payload output: $out"
case $out in uid=0\(root\)*) ;; *) die "the payload did not run: $out" ;; esac
[ ! -e "$payload" ] || die "$payload leaked into the host's /dev/shm"
log "host /dev/shm untouched: no $payload"
