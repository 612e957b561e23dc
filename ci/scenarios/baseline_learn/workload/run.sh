#!/usr/bin/env bash
# baseline_learn/workload: the sandboxed host's routine, run while the agent
# learns (and once more after the promotion, where it must raise nothing
# from the baseline rules): an admin shell running the usual tools, a
# cron-like job, and the application's cron file rewritten by a deploy.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"
root=${PICKET_HOST_ROOT:?}
work=$(tmpdir work)
for i in 1 2 3; do
	/bin/sh -c "ls '$work' >/dev/null; date >/dev/null; printf '%s\n' run-$i >>'$work/log'"
	/bin/sh -c "sort '$work/log' | uniq -c >/dev/null"
	sleep 0.3
done
# The deploy rewrites the app's cron file with its usual line.
printf '%s\n' '*/5 * * * * root /usr/local/bin/app-tick' >"$root/etc/cron.d/app"
log "workload done"
