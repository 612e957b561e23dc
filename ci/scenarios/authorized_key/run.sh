#!/usr/bin/env bash
# authorized_key: an attacker's key appended to root's authorized_keys.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root=${PICKET_HOST_ROOT:?}
key=$(tmpdir key)/id
ssh-keygen -q -t ed25519 -N '' -C attacker@evil -f "$key"
sleep 1
cat "$key.pub" >>"$root/root/.ssh/authorized_keys"
log "appended $(ssh-keygen -lf "$key.pub")"
