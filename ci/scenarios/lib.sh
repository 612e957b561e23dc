# shellcheck shell=bash
# lib.sh — helpers every scenario's run.sh sources (see README.md).
#
# Sandbox rules the helpers enforce: network changes only inside network
# namespaces created here (named $SCENARIO_NS_PREFIX<name>), veth ends are
# created directly inside those namespaces (never in the host's), addresses
# only from 198.18.0.0/15, files only under $PICKET_SCENARIO_TMP. Everything
# a helper creates is registered for cleanup, which runs in reverse order
# when run.sh exits — normally, on error (set -e) or on SIGINT/SIGTERM.

: "${PICKET_SCENARIO_TMP:?run scenarios through the runner (go test ./ci/scenarios/) or set PICKET_SCENARIO_TMP}"
: "${SCENARIO_NS_PREFIX:?run scenarios through the runner (go test ./ci/scenarios/) or set SCENARIO_NS_PREFIX}"
case $PICKET_SCENARIO_TMP in
/ | "") echo "lib.sh: refusing PICKET_SCENARIO_TMP=$PICKET_SCENARIO_TMP" >&2 && exit 2 ;;
esac

SCENARIO_NAME=$(basename "$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)")

log() { printf '[%s] %s\n' "$SCENARIO_NAME" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# --- cleanup registry -------------------------------------------------------

_cleanups=()

# on_cleanup CMD [ARG...] — run CMD ARGS when the script exits (last
# registered runs first). Errors in cleanup commands are reported, not fatal.
on_cleanup() {
	local q
	printf -v q '%q ' "$@"
	_cleanups+=("$q")
}

_run_cleanups() {
	local rc=$? i
	trap - EXIT INT TERM
	set +e
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[i]}" || log "cleanup failed: ${_cleanups[i]}"
	done
	_cleanups=()
	exit "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- files ----------------------------------------------------------------

# tmpdir NAME — prints a fresh directory $PICKET_SCENARIO_TMP/NAME (the
# runner removes the whole tree). Safe to call in $(...).
tmpdir() {
	local d="$PICKET_SCENARIO_TMP/$1"
	mkdir -p "$d"
	printf '%s\n' "$d"
}

# wait_file PATH [SECONDS] — waits until PATH exists (a socket, a pid file).
wait_file() {
	local path=$1 secs=${2:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		[ -e "$path" ] && return 0
		sleep 0.05
	done
	die "timed out after ${secs}s waiting for $path"
}

# --- processes --------------------------------------------------------------

# kill_tree PID — SIGTERM, then SIGKILL after 3 s if still alive.
kill_tree() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	log "pid $pid ignored SIGTERM; killing"
	kill -KILL "$pid" 2>/dev/null || true
}

# spawn NAME CMD [ARG...] — starts CMD in the background (stdout/stderr to
# $PICKET_SCENARIO_TMP/NAME.log, stdin from $SPAWN_STDIN or /dev/null),
# registers its termination, and sets SPAWNED_PID. Not in $(...): the
# registration must happen in this shell.
spawn() {
	local name=$1
	shift
	"$@" >"$PICKET_SCENARIO_TMP/$name.log" 2>&1 <"${SPAWN_STDIN:-/dev/null}" &
	SPAWNED_PID=$!
	on_cleanup kill_tree "$SPAWNED_PID"
	log "started $name (pid $SPAWNED_PID): $*"
}

# spawn_in_ns NS NAME CMD [ARG...] — spawn inside namespace NS.
spawn_in_ns() {
	local ns=$1
	shift
	local name=$1
	shift
	spawn "$name" ip netns exec "$(ns_name "$ns")" "$@"
}

# --- network namespaces -----------------------------------------------------

# ns_name NAME — the full namespace name for scenario-local NAME.
ns_name() { printf '%s%s\n' "$SCENARIO_NS_PREFIX" "$1"; }

_ns_delete() {
	local ns=$1 pids
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null || true
		sleep 0.3
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		# shellcheck disable=SC2086
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
	fi
	ip netns del "$ns"
}

# make_ns NAME — creates network namespace $SCENARIO_NS_PREFIX$NAME with
# lo up; it (and every process left in it) goes away on cleanup.
make_ns() {
	local ns
	ns=$(ns_name "$1")
	ip netns add "$ns"
	on_cleanup _ns_delete "$ns"
	ip -n "$ns" link set lo up
	log "netns $ns"
}

_veth_n=0

_check_addr() {
	case $1 in
	198.18.*.*/* | 198.19.*.*/*) ;;
	*) die "address $1 is outside 198.18.0.0/15 (scenarios use only that range)" ;;
	esac
}

# veth_pair NS1 NS2 ADDR1 ADDR2 — a veth pair created directly inside NS1 and
# NS2 (never in the host's namespace), addresses set and links up. ADDRs
# default to /30 when given without a prefix length. Sets VETH1/VETH2 to the
# interface names.
veth_pair() {
	local ns1 ns2 a1=$3 a2=$4
	ns1=$(ns_name "$1")
	ns2=$(ns_name "$2")
	case $a1 in */*) ;; *) a1=$a1/30 ;; esac
	case $a2 in */*) ;; *) a2=$a2/30 ;; esac
	_check_addr "$a1"
	_check_addr "$a2"
	_veth_n=$((_veth_n + 1))
	VETH1=pv${_veth_n}a VETH2=pv${_veth_n}b
	ip link add "$VETH1" netns "$ns1" type veth peer name "$VETH2" netns "$ns2"
	ip -n "$ns1" addr add "$a1" dev "$VETH1"
	ip -n "$ns2" addr add "$a2" dev "$VETH2"
	ip -n "$ns1" link set "$VETH1" up
	ip -n "$ns2" link set "$VETH2" up
	log "veth $ns1/$VETH1 $a1 <-> $ns2/$VETH2 $a2"
}

# in_ns NS CMD [ARG...] — runs CMD inside namespace NS (foreground).
in_ns() {
	local ns
	ns=$(ns_name "$1")
	shift
	ip netns exec "$ns" "$@"
}

# wait_port NS ADDR PORT [SECONDS] — waits until something listens on
# ADDR:PORT (TCP) inside NS. Looks at the socket table (ss), so it makes no
# connection that the server would log or the agent would see.
wait_port() {
	local ns=$1 addr=$2 port=$3 secs=${4:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		if in_ns "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -qF "$addr:$port"; then
			return 0
		fi
		sleep 0.05
	done
	die "timed out after ${secs}s waiting for $addr:$port in $(ns_name "$ns")"
}
