#!/usr/bin/env bash
# uid0: a second root account appended to passwd (and shadow), the classic
# backdoor account.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root=${PICKET_HOST_ROOT:?}
sleep 1
echo 'toor:x:0:0::/root:/bin/bash' >>"$root/etc/passwd"
echo 'toor:*:19000:0:99999:7:::' >>"$root/etc/shadow"
log "added toor with uid 0"
