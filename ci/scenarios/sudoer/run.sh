#!/usr/bin/env bash
# sudoer: a drop-in gives an account passwordless sudo.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root=${PICKET_HOST_ROOT:?}
sleep 1
echo 'alice ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/90-backup"
log "wrote $root/etc/sudoers.d/90-backup"
