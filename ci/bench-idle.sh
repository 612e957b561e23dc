#!/usr/bin/env bash
# bench-idle: what the agent costs on a quiet host (issue 12, "quiet at rest").
#
# Starts the real binary in observe mode on the embedded default policy with
# a private state directory (observe mode acts on nothing, so this is safe in
# the host's namespaces), waits until it runs and its file-integrity baseline
# scan is done, then measures over IDLE_SECONDS (default 180):
#   - CPU: utime+stime from /proc/PID/stat, as % of one core;
#   - RSS: VmRSS from /proc/PID/status, sampled every 5 s (last and peak),
#     and its split into anonymous memory and file pages (the binary);
# and prints them against the goal: <= 0.5 % of a core, <= 35 MB.
#
# The figures include the agent's reaction to whatever the host does
# meanwhile (every exec is a process event): on a busy build machine they
# are an upper bound; the load average is printed beside them.
#
# Environment: PICKET_BIN (default: build ./cmd/picket), IDLE_SECONDS (180),
# SETTLE_SECONDS (max wait for the baseline scan, 600), IDLE_STRICT=1 (exit 1
# when over the goal).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
idle=${IDLE_SECONDS:-180}
settle=${SETTLE_SECONDS:-600}
work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

bin=${PICKET_BIN:-}
if [ -z "$bin" ]; then
	bin=$work/picket
	go build -o "$bin" ./cmd/picket
fi
state=$work/state
"$bin" run --state-dir "$state" --config "$work/absent.cue" --mode observe 2>"$work/agent.log" &
pid=$!

status() { "$bin" status --state-dir "$state" --json 2>/dev/null || true; }
deadline=$((SECONDS + settle))
until status | grep -q '"running":true'; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
		echo "bench-idle: the agent did not start" >&2
		tail -20 "$work/agent.log" >&2
		exit 1
	fi
	sleep 1
done
# Settled: the files sensor has finished its first full scan (its detail
# then reads "last full scan: ..."), plus a few seconds for the rest.
until status | grep -q 'last full scan:'; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "bench-idle: the agent exited while settling" >&2
		tail -20 "$work/agent.log" >&2
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "bench-idle: baseline scan not done after ${settle}s; measuring anyway" >&2
		break
	fi
	sleep 2
done
sleep 10

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
# Execs the process sensor saw: what the host did meanwhile.
execs() { status | grep -o '[0-9]* execs' | head -1 | cut -d' ' -f1; }
load0=$(cut -d' ' -f1 /proc/loadavg)
e0=$(execs)
t0=$(ticks)
s0=$(date +%s.%N)
peak=0
end=$((SECONDS + idle))
while [ "$SECONDS" -lt "$end" ]; do
	kill -0 "$pid" 2>/dev/null || { echo "bench-idle: the agent exited during the measurement" >&2; tail -20 "$work/agent.log" >&2; exit 1; }
	r=$(rss_kb)
	[ "$r" -gt "$peak" ] && peak=$r
	sleep 5
done
t1=$(ticks)
s1=$(date +%s.%N)
last=$(rss_kb)
anon=$(awk '/^RssAnon:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
file=$(awk '/^RssFile:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
[ "$last" -gt "$peak" ] && peak=$last
load1=$(cut -d' ' -f1 /proc/loadavg)
e1=$(execs)

cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.2f", (b - a) / hz / (s1 - s0) * 100 }')
last_mb=$(awk -v k="$last" 'BEGIN { printf "%.1f", k / 1024 }')
peak_mb=$(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }')
rate=$(awk -v a="${e0:-0}" -v b="${e1:-0}" -v s="$idle" 'BEGIN { printf "%.1f", (b - a) / s }')
echo "== idle agent (observe, default policy, ${idle}s; host load ${load0} -> ${load1}, ${rate} execs/s on the host)"
echo "idle cpu: ${cpu}% of a core (goal <= 0.5%)"
echo "idle rss: ${last_mb} MB (peak ${peak_mb} MB; goal <= 35 MB): ${anon} MB anonymous, ${file} MB file pages (the binary's code, clean and reclaimable)"
over=""
awk -v c="$cpu" 'BEGIN { exit !(c > 0.5) }' && over="$over cpu"
awk -v m="$peak_mb" 'BEGIN { exit !(m > 35) }' && over="$over rss"
if [ -n "$over" ]; then
	echo "bench-idle: over the goal:$over"
	[ "${IDLE_STRICT:-0}" = 1 ] && exit 1
fi
exit 0
