#!/usr/bin/env bash
# listener: an attacker opens a listener nobody whitelisted (python3 -m
# http.server 9090) inside namespace "srv"; the network sensor polls every
# 2 s, so the listener stays up long enough to be seen.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

make_ns srv
make_ns cli
veth_pair srv cli 198.18.2.1/30 198.18.2.2/30
dir=$(tmpdir www)
echo hello >"$dir/index.html"
(cd "$dir" && spawn_in_ns srv httpserver python3 -m http.server 9090 --bind 198.18.2.1)
wait_port srv 198.18.2.1 9090
got=$(in_ns cli curl -s http://198.18.2.1:9090/index.html)
[ "$got" = hello ] || die "the listener did not answer: $got"
log "listener on 198.18.2.1:9090 answered"
sleep 5
