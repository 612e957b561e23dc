#!/usr/bin/env bash
# ci/bench-load.sh: the live agent under a 50,000-address SSH brute force
# (issue 12). Standalone; `make bench` runs it through ci/bench.sh.
#
# Builds bin/picket and the load driver (ci/load), starts `picket run` in
# enforce mode with no learning period, as shipped (GOMEMLIMIT from examples/systemd/picket.service),
# INSIDE its own network, PID and mount namespaces: its nftables table
# lives in that network namespace only, its process sensor sees only its
# own PID namespace, and its /var/log is a bind mount of a temporary
# directory (so the auth sensor follows our file, and no journal is there:
# "auto" falls back to the file). Its host files (--host-root) are a
# private minimal copy of /etc. Then the driver appends 1,000,000 sshd
# failure lines from 50,000 addresses in 198.18.0.0/15 (20 each,
# interleaved) at full speed and prints lines/s ingested, peak RSS, CPU,
# blocks in the kernel set and the crossing-line-to-block latency, beside
# fail2ban's figures. Gives up after LOAD_TIMEOUT (default 5m). Everything
# it creates (namespace, processes, temporary directory) is removed on exit.
#
# Environment: LOAD_ADDRS (50000), LOAD_PER_ADDR (20), LOAD_TIMEOUT (5m),
# LOAD_LOG (a path: keep the agent's log there), LOAD_BIN (run this
# picket binary instead of building one: an unstripped build for perf), LOAD_MODE (enforce; observe runs the same without actions, to tell the
# pipeline's cost from the engine's),
# PICKET_REQUIRE_INTEGRATION=1 turns a missing prerequisite into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

skip() {
	echo "bench-load: skipped: $*"
	if [ "${PICKET_REQUIRE_INTEGRATION:-}" = 1 ]; then exit 1; fi
	exit 0
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network, PID and mount namespaces, nftables)"
for b in ip nft unshare mount; do
	command -v "$b" >/dev/null || skip "$b not installed"
done

addrs=${LOAD_ADDRS:-50000}
per=${LOAD_PER_ADDR:-20}
timeout=${LOAD_TIMEOUT:-5m}
mode=${LOAD_MODE:-enforce} # observe: the same run without the action engine acting (diagnosis)
work=$(mktemp -d /tmp/picket-load.XXXXXX)
ns="picketload$$"
agent_pid=""
outer_pid=""

cleanup() {
	set +e
	if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
		kill -TERM "$agent_pid"
		for _ in $(seq 150); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$agent_pid" 2>/dev/null && kill -KILL "$agent_pid"
	fi
	if [ -n "$outer_pid" ]; then
		# The namespace's init (sh) exits once the agent has; unshare follows.
		for _ in $(seq 50); do kill -0 "$outer_pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$outer_pid" 2>/dev/null && kill -KILL "$outer_pid"
		wait "$outer_pid" 2>/dev/null
	fi
	ip netns del "$ns" 2>/dev/null
	if [ -n "${LOAD_LOG:-}" ]; then cp "$work/agent.log" "$LOAD_LOG"; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== build"
if [ -n "${LOAD_BIN:-}" ]; then
	bin=$LOAD_BIN
else
	make -s build
	bin=$(pwd)/bin/picket
fi
CGO_ENABLED=0 go build -o "$work/load" ./ci/load

# A minimal private /etc for the users, persistence and file sensors.
root="$work/root"
mkdir -p "$root/etc/sudoers.d" "$root/etc/cron.d" "$root/etc/systemd/system" "$root/root/.ssh" "$work/varlog" "$work/state"
printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root ALL=(ALL:ALL) ALL\n' >"$root/etc/sudoers"
: >"$root/root/.ssh/authorized_keys"
: >"$work/varlog/auth.log"

ip netns add "$ns"
ip -n "$ns" link set lo up

memlimit=$(sed -n 's/^Environment=GOMEMLIMIT=//p' examples/systemd/picket.service)
echo "== agent: $mode, learning 0s, GOMEMLIMIT=$memlimit, in netns $ns + own PID and mount namespaces"
# sh stays PID 1 of the namespace (the agent is not init); its exit takes
# every process left in the namespace with it.
GOMEMLIMIT=$memlimit ip netns exec "$ns" unshare --pid --fork --mount-proc --propagation private \
	sh -c 'mount --bind "$1/varlog" /var/log || exit 1
		"$2" run --state-dir "$1/state" --config "$1/absent.cue" --mode "$3" --learning-period 0s --host-root "$1/root" 2>"$1/agent.log" &
		wait' sh "$work" "$bin" "$mode" &
outer_pid=$!

# The agent's host PID, then wait until it follows the auth file.
for _ in $(seq 100); do
	for p in $(ip netns pids "$ns" 2>/dev/null); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = picket ]; then agent_pid=$p; fi
	done
	[ -n "$agent_pid" ] && break
	sleep 0.1
done
[ -n "$agent_pid" ] || { cat "$work/agent.log" >&2; echo "bench-load: the agent did not start" >&2; exit 1; }
ready=""
for _ in $(seq 300); do
	if out=$("$bin" status --state-dir "$work/state" --json 2>/dev/null) &&
		grep -q '"running": *true' <<<"$out" && grep -q 'auth' <<<"$out"; then
		ready=1
		break
	fi
	kill -0 "$agent_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$ready" ]; then
	tail -c 4000 "$work/agent.log" >&2
	echo "bench-load: the agent is not running after 30 s" >&2
	exit 1
fi
grep -o '"name": *"auth"[^}]*' <<<"$out" || true
echo "agent running, host pid $agent_pid"
echo

echo "== load: $((addrs * per)) lines from $addrs addresses"
status=0
"$work/load" --file "$work/varlog/auth.log" --source auth:file:/var/log/auth.log --state-dir "$work/state" \
	--pid "$agent_pid" --netns "$ns" --addrs "$addrs" --per-addr "$per" --timeout "$timeout" || status=$?
echo
"$bin" status --state-dir "$work/state" 2>/dev/null | grep -E '^(counters|state|mode|actions|breaker)' || true
if [ "$status" -ne 0 ]; then
	echo "agent log (errors, last 20):"
	grep -E '"level":"(ERROR|WARN)"' "$work/agent.log" | tail -20 || true
fi
exit "$status"
