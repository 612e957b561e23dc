#!/usr/bin/env bash
# db_egress: a process named mariadbd (a copy of python3, as a compromised
# database server would look) connects from namespace "db" to an address it
# has no business with, hosted in namespace "out"; the connection stays
# open across the network sensor's polls.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

make_ns db
make_ns out
veth_pair db out 198.18.3.1/30 198.18.3.2/30
dir=$(tmpdir www)
echo data >"$dir/x"
(cd "$dir" && spawn_in_ns out sink python3 -m http.server 8443 --bind 198.18.3.2)
wait_port out 198.18.3.2 8443
bin=$(tmpdir bin)
# The real interpreter, not a wrapper script (pyenv shims, for one).
cp "$(readlink -f /usr/bin/python3)" "$bin/mariadbd"
log "mariadbd connecting to 198.18.3.2:8443"
in_ns db "$bin/mariadbd" -c 'import socket, time
s = socket.create_connection(("198.18.3.2", 8443))
time.sleep(6)
s.close()'
