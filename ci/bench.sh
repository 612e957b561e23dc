#!/usr/bin/env bash
# make bench: throughput and memory figures, printed.
#  1. Go benchmarks of the hot paths (parsers, tailer, whole replay pipeline), one core.
#  2. The real binary replaying >= 100k auth-log lines on one core (GOMAXPROCS=1):
#     lines/s and peak RSS, the figures the issue's targets are stated in
#     (>= 200,000 lines/s; fail2ban-regex ~14,000 lines/s at 207 MB, CrowdSec ~2,500 lines/s at 270 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
data=../shared/data/loghub/OpenSSH_2k.log
if [ ! -f "$data" ]; then
	echo "bench: $data missing (the shared data folder is not beside this clone)" >&2
	exit 1
fi
if ! [ -x /usr/bin/time ]; then
	if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq time >/dev/null; else echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== Go benchmarks (one core)"
go test -run '^$' -bench . -benchmem -cpu 1 -benchtime 2s \
	./agent/authlog ./agent/weblog ./agent/logtime ./agent/tail ./agent/replay 2>&1 | grep -E '^(Benchmark|ok|FAIL)'

echo
echo "== picket replay, real binary, GOMAXPROCS=1"
CGO_ENABLED=0 go build -o "$work/picket" ./cmd/picket
for _ in $(seq 100); do cat "$data"; done >"$work/auth.log"
lines=$(wc -l <"$work/auth.log")
best=""
for run in 1 2 3; do
	GOMAXPROCS=1 /usr/bin/time -f '%e %M' -o "$work/time" \
		"$work/picket" replay --auth "$work/auth.log" --year 2024 --tz UTC --json --stats >"$work/out.jsonl"
	read -r secs rss_kb <"$work/time"
	echo "run $run: ${secs}s, peak RSS $((rss_kb / 1024)) MB"
	if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; best_rss=$rss_kb; fi
done
incidents=$(grep -c '"id":' "$work/out.jsonl" || true)
rate=$(awk "BEGIN{printf \"%d\", $lines / ($best > 0 ? $best : 0.001)}")
echo
echo "auth-log replay: $lines lines in ${best}s on one core = $rate lines/s, peak RSS $((best_rss / 1024)) MB, $incidents incidents"
echo "target: >= 200000 lines/s; fail2ban-regex ~14000 lines/s (207 MB), CrowdSec replay ~2500 lines/s (270 MB)"
if [ "$rate" -lt 200000 ]; then
	echo "bench: below the 200000 lines/s target" >&2
	exit 1
fi
