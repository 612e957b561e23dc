#!/bin/sh
# picket-emergency-stop: undo everything picket may hold on this host, without
# the picket binary and without its database. Idempotent: safe to run twice,
# or when picket holds nothing.
#
#   - deletes picket's nftables table (blocks, rate limits, outbound blocks,
#     containment mode, SSH pause);
#   - removes /run/nologin if picket created it, or puts back what was there;
#   - re-enables the accounts picket disabled (their previous expiry);
#   - unpauses or reconnects the containers picket isolated.
#
# It reads the plain files picket keeps in $PICKET_STATE_DIR/emergency. Before
# undoing anything it creates $PICKET_STATE_DIR/emergency/stop ("time who"):
# a running agent sees it within a second, trips its circuit breaker
# (observe-only) and re-creates nothing; `picket actions resume` removes it.
#
# Environment (for tests and unusual installs):
#   PICKET_STATE_DIR  state directory (/var/lib/picket)
#   PICKET_ROOT       root whose /etc holds the accounts (chage --root); "" = /
#   PICKET_NOLOGIN    the nologin file (/run/nologin)
#   PICKET_NFT_TABLE  nftables table name, family inet (picket)
#   DOCKER_SOCKET     Docker Engine API socket (/var/run/docker.sock)
set -u
STATE=${PICKET_STATE_DIR:-/var/lib/picket}
REG=$STATE/emergency
ROOT=${PICKET_ROOT:-}
NOLOGIN=${PICKET_NOLOGIN:-/run/nologin}
TABLE=${PICKET_NFT_TABLE:-picket}
SOCK=${DOCKER_SOCKET:-/var/run/docker.sock}
failed=0

say() { echo "picket-emergency-stop: $*"; }
fail() { echo "picket-emergency-stop: $*" >&2; failed=1; }

# 0. The stop file, first, so a running agent stops acting before we undo
# what it holds (else it would re-assert its blocks at once). Written to a
# temporary name and moved: the agent never reads half a line.
who=${SUDO_USER:-$(id -un 2>/dev/null || echo unknown)}
stopfile=$REG/stop
if mkdir -p "$REG" && chmod 700 "$REG" &&
	printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$who" >"$stopfile.tmp.$$" &&
	mv -f "$stopfile.tmp.$$" "$stopfile"; then
	say "wrote $stopfile: a running agent stops acting (observe-only until picket actions resume)"
else
	rm -f "$stopfile.tmp.$$"
	fail "could not write $stopfile: a running agent may act again (stop it: systemctl stop picket)"
fi
# A running agent holds an flock on $STATE/picket.lock (its pid inside) and
# looks for the stop file every second: give it two to stop re-asserting.
lock=$STATE/picket.lock
if [ -s "$lock" ]; then
	running=0
	if command -v flock >/dev/null 2>&1; then
		flock -n "$lock" true || running=1
	elif kill -0 "$(cat "$lock")" 2>/dev/null; then
		running=1
	fi
	if [ "$running" -eq 1 ]; then
		say "agent (pid $(cat "$lock")) is running: waiting 2s for it to stop acting"
		sleep 2
	fi
fi

# 1. Firewall: one table holds every rule and set picket made.
if command -v nft >/dev/null 2>&1; then
	if nft list table inet "$TABLE" >/dev/null 2>&1; then
		if nft delete table inet "$TABLE"; then say "removed nftables table inet $TABLE"; else fail "could not remove nftables table inet $TABLE"; fi
	else
		say "no nftables table inet $TABLE"
	fi
else
	fail "nft not found: cannot check for table inet $TABLE (install nftables, or reboot: picket's rules are not persistent)"
fi

# 2. /run/nologin.
if [ -f "$REG/nologin.saved" ]; then
	if cp "$REG/nologin.saved" "$NOLOGIN"; then rm -f "$REG/nologin.saved"; say "restored $NOLOGIN as it was"; else fail "could not restore $NOLOGIN"; fi
elif [ -f "$REG/nologin.created" ]; then
	rm -f "$NOLOGIN" && rm -f "$REG/nologin.created" && say "removed $NOLOGIN"
fi

# 3. Accounts: the expire field as it was before picket (empty = never).
if [ -s "$REG/users" ]; then
	left=""
	tab=$(printf '\t')
	while IFS="$tab" read -r user prev; do
		[ -n "$user" ] || continue
		if [ -z "$prev" ]; then exp=-1; else exp=$prev; fi
		if chage ${ROOT:+-R "$ROOT"} -E "$exp" "$user"; then
			say "re-enabled account $user (expiry ${prev:-none})"
		else
			fail "could not re-enable account $user"
			left="$left$user$tab$prev
"
		fi
	done <"$REG/users"
	printf '%s' "$left" >"$REG/users"
fi

# 4. Containers: unpause, or reconnect the networks with their saved endpoints.
api() { # METHOD PATH [BODY-FILE]
	if [ -n "${3:-}" ]; then
		curl -fsS --unix-socket "$SOCK" -X "$1" -H 'Content-Type: application/json' --data-binary "@$3" "http://docker$2" >/dev/null
	else
		curl -fsS --unix-socket "$SOCK" -X "$1" "http://docker$2" >/dev/null
	fi
}
for f in "$REG"/containers/*.pause; do
	[ -e "$f" ] || continue
	id=$(basename "$f" .pause)
	if command -v curl >/dev/null 2>&1 && api POST "/containers/$id/unpause"; then
		rm -f "$f"; say "unpaused container $id"
	elif command -v docker >/dev/null 2>&1 && docker -H "unix://$SOCK" unpause "$id" >/dev/null; then
		rm -f "$f"; say "unpaused container $id"
	elif command -v curl >/dev/null 2>&1 && curl -fsS --unix-socket "$SOCK" "http://docker/containers/$id/json" | grep -q '"Paused":false'; then
		rm -f "$f"; say "container $id is not paused"
	else
		fail "could not unpause container $id"
	fi
done
for f in "$REG"/containers/*.json; do
	[ -e "$f" ] || continue
	base=${f%.json}
	set -- $(cat "$base.args")
	# The last two arguments are the network and the container.
	eval "net=\${$(($# - 1))}; id=\${$#}"
	if command -v curl >/dev/null 2>&1; then
		out=$(curl -sS --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' --data-binary "@$f" \
			-w '%{http_code}' -o /dev/null "http://docker/networks/$net/connect")
		case $out in
		2*) rm -f "$f" "$base.args"; say "reconnected container $id to network $net" ;;
		403) rm -f "$f" "$base.args"; say "container $id is already on network $net" ;;
		*) fail "could not reconnect container $id to network $net (HTTP $out)" ;;
		esac
	elif command -v docker >/dev/null 2>&1 && docker -H "unix://$SOCK" network connect "$@"; then
		rm -f "$f" "$base.args"; say "reconnected container $id to network $net"
	else
		fail "could not reconnect container $id to network $net (no curl or docker)"
	fi
done

if [ "$failed" -ne 0 ]; then
	say "some steps failed (above); run again once fixed"
	exit 1
fi
say "done: picket holds nothing on this host"
