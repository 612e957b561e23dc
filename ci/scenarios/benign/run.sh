#!/usr/bin/env bash
# benign: what a normal server does all day, which must raise nothing —
# a busy shell script (ls, grep, sed, awk, sort, find, tar over a temp dir),
# cron-like jobs (/bin/sh -c every 200 ms for ~5 s, one of them a script in
# the temp dir run by /bin/sh), read-only package-manager queries, tools
# that are suspicious only under a web server (curl, id, whoami, uname,
# base64, python3) run from an admin shell, and curl to a loopback HTTP
# server (inside a namespace of its own) that is not under a web server.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

# --- a busy script over a temp dir -----------------------------------------
data=$(tmpdir data)
for i in $(seq 1 40); do
	printf 'host-%d ok %d\nhost-%d warn %d\n' "$i" "$((i * 7))" "$i" "$((i * 3))" >"$data/log-$i.txt"
done
for round in 1 2 3; do
	ls -la "$data" >/dev/null
	grep -l warn "$data"/*.txt | wc -l >/dev/null
	sed -n 's/ warn / WARN /p' "$data"/log-1*.txt >"$data/sed.out"
	awk '{ s += $3 } END { print s }' "$data"/*.txt >"$data/awk.out"
	(set +o pipefail; cat "$data"/*.txt | sort -k3 -n | uniq -c | head -5 >/dev/null)
	find "$data" -name '*.txt' -newer "$data/log-1.txt" | xargs -r wc -l >/dev/null
done
tar -czf "$data/backup.tgz" -C "$data" . 2>/dev/null || true
log "busy script: $(cat "$data/awk.out") (awk total), $(ls "$data" | wc -l) files"

# --- admin tools that only matter under a web server -----------------------
log "admin: $(id -un) on $(uname -r), $(whoami); base64 round trip: $(echo aGVsbG8K | base64 -d)"
sh -c 'echo cGlja2V0Cg== | base64 -d | wc -c' >/dev/null
"$python" -c 'import sys; print(sys.version.split()[0])' >/dev/null

# --- package-manager-like activity (read-only) ------------------------------
# (pipes into head: the writer may get SIGPIPE, which is not a failure)
(set +o pipefail; dpkg-query -l | head -5 >/dev/null)
dpkg-query -W -f='${Package} ${Version}\n' bash coreutils >/dev/null
dpkg -S /bin/ls >/dev/null
apt-cache policy bash >/dev/null
(set +o pipefail; apt-config dump 2>/dev/null | head -3 >/dev/null)
log "package queries done"

# --- curl to a loopback server, not under a web server ----------------------
make_ns local
www=$(tmpdir www)
echo "status: fine" >"$www/health"
spawn_in_ns local http "$python" -m http.server --bind 127.0.0.1 --directory "$www" 8000
wait_port local 127.0.0.1 8000
got=$(in_ns local curl -sS --max-time 5 http://127.0.0.1:8000/health)
log "curl http://127.0.0.1:8000/health (namespace $(ns_name local)): $got"
[ "$got" = "status: fine" ] || die "unexpected health answer: $got"

# --- cron-like jobs: /bin/sh -c every 200 ms for ~5 s ------------------------
job=$data/job.sh
cat >"$job" <<'SH'
#!/bin/sh
date +%s >>"$1/cron.log"
ls "$1" | grep -c txt >/dev/null
SH
n=0
end=$((SECONDS + 5))
while [ "$SECONDS" -lt "$end" ]; do
	/bin/sh -c "date +%s >>'$data/cron.log'; df -h / >/dev/null; uptime >/dev/null"
	/bin/sh "$job" "$data"
	n=$((n + 1))
	sleep 0.2
done
log "cron-like jobs: $n rounds, $(wc -l <"$data/cron.log") log lines"
