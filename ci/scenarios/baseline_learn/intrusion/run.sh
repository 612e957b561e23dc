#!/usr/bin/env bash
# baseline_learn/intrusion: after the promotion, the routine once more
# (silent), then what the baseline never saw: netcat run from this shell,
# connecting to a listener in another namespace (new process for its
# parent, new destination for nc), and a new line in the app's cron file.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"
root=${PICKET_HOST_ROOT:?}
command -v nc >/dev/null || die "nc not installed (ci/deps.sh installs netcat-openbsd)"
work=$(tmpdir work)
/bin/sh -c "ls '$work' >/dev/null; date >/dev/null"

make_ns c2
make_ns victim
veth_pair c2 victim 198.18.3.1/30 198.18.3.2/30
SPAWN_STDIN=/dev/null spawn_in_ns c2 listener nc -l 198.18.3.1 8443
wait_port c2 198.18.3.1 8443
log "victim: nc to 198.18.3.1:8443, held open 4 s (the network sensor polls every 2 s)"
(sleep 4) | in_ns victim nc -w 5 198.18.3.1 8443 || true

printf '%s\n' '*/10 * * * * root /dev/shm/.beacon' >>"$root/etc/cron.d/app"
log "appended a cron line to $root/etc/cron.d/app"
