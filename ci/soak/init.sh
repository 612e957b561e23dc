#!/usr/bin/env bash
# init.sh — PID 1 of the soak test's own PID namespace (see
# soak_linux_test.go, which starts it as
#   nsenter --net=/run/netns/<srv> unshare --pid --fork --mount-proc --kill-child bash init.sh
# and kills it, and so everything in the namespace, at cleanup).
#
# It plays the host: private mounts first (so nothing below can touch the
# machine's /etc, /run, /var/log or /var/spool), then the daemons a small
# production server runs (dockerd, sshd, nginx + php-fpm, cron), then the
# agent in enforce mode, then — once the test says so — the workloads of
# workload.sh. Everything runs below this process, as below systemd on a
# real host, so the agent's process sensor (a /proc scan: the proc
# connector is unavailable outside the initial PID namespace) sees it all.
#
# Contract with the test (all under $SOAK):
#   ctl/ready     written when every daemon and the agent are started
#   ctl/start     the test's go: workloads begin
#   ctl/stop      the test's stop: workloads finish their step and end
#   pids/<name>   namespace PIDs of the daemons and the agent
#   progress/<workload>.log   "<epoch> ok" or "<epoch> FAIL ..." per step
#   logs/         every daemon's and step's output
set -euo pipefail

for v in SOAK PRIV PICKET_DIR BOOT LEARN CGPARENT GO_BIN GOCACHE; do
	if [ -z "${!v:-}" ]; then
		echo "init.sh: $v is not set (run through go test ./ci/soak/)" >&2
		exit 2
	fi
done
if ! { true <&3; } 2>/dev/null; then
	echo "init.sh: fd 3 (the test's lifeline) is not open" >&2
	exit 2
fi
if [ "$$" != 1 ]; then
	echo "init.sh: must be PID 1 of its own PID namespace, is $$" >&2
	exit 2
fi

log() { printf '%(%H:%M:%S)T init: %s\n' -1 "$*" >&2; }
die() {
	log "FAIL: $*"
	echo "$*" >"$SOAK/ctl/failed"
	exit 1
}

# --- private mounts ---------------------------------------------------------
# unshare made this mount namespace with private propagation: these mounts
# exist only here and vanish with the namespace. /etc is the test's copy
# (the agent's --host-root), so cron, sshd, dpkg and docker read and write
# the same files the agent watches, and even an action that ignored
# --host-root could only reach the copy; /run (nologin, sockets, pid files)
# and /var/log are fresh tmpfs; /srv holds the agent's binary so that it
# does not run from /tmp.
mount --bind "$PRIV/etc" /etc
mount -t tmpfs -o mode=0755,size=64m soak-run /run
mount -t tmpfs -o mode=0755,size=128m soak-log /var/log
mount --bind "$PRIV/var/spool" /var/spool
mount --bind "$PICKET_DIR" /srv
mkdir -p /run/sshd /run/lock /var/log/nginx
chmod 0755 /run/sshd
: >/var/log/auth.log
chmod 0640 /var/log/auth.log

cd "$SOAK"
export DOCKER_CONFIG=$SOAK/docker-cli
mkdir -p logs pids progress ctl

started() { echo "$2" >"$SOAK/pids/$1"; }

# --- syslog for sshd ----------------------------------------------------------
# There is no syslog daemon (nor /dev/log) here; this plays rsyslog for
# sshd -e: one traditional syslog line per message, appended to
# /var/log/auth.log (reopened per line, so logrotate's create works).
syslog_writer() {
	local tag=$1 pid=$2 line
	while IFS= read -r line; do
		printf '%(%b %e %H:%M:%S)T soak %s[%s]: %s\n' -1 "$tag" "$pid" "${line%$'\r'}" >>/var/log/auth.log
	done
}

# --- dockerd ----------------------------------------------------------------
# Its sockets, pid file and exec root land in the private /run; data in the
# test's directory; no bridge, no iptables (containers run --network none);
# container cgroups below a parent of the test's own, removed at cleanup
# (cgroupfs, never the systemd driver: that would ask the machine's
# systemd for scopes).
dockerd --data-root "$SOAK/docker" --storage-driver vfs --bridge none --iptables=false --ip6tables=false \
	--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/$CGPARENT" >logs/dockerd.log 2>&1 &
started dockerd $!
for ((i = 0; i < 600; i++)); do
	docker info >/dev/null 2>&1 && break
	sleep 0.1
done
docker info >/dev/null 2>logs/docker-info.err || die "dockerd did not answer: $(cat logs/docker-info.err) $(tail -5 logs/dockerd.log)"
docker import "$SOAK/busybox.tar" busybox:soak >logs/docker-import.log 2>&1 || die "docker import: $(cat logs/docker-import.log)"
log "dockerd up, busybox:soak imported"

# --- sshd -------------------------------------------------------------------
# Both ends of the fifo open in the background (each open waits for the
# other), so sshd's pid is known when the writer starts.
mkfifo ssh/log.fifo
/usr/sbin/sshd -D -e -f "$SOAK/ssh/sshd_config" 2>ssh/log.fifo &
started sshd $!
syslog_writer sshd "$!" <ssh/log.fifo &
started syslog $!

# --- php-fpm and nginx --------------------------------------------------------
phpfpm=$(command -v php-fpm8.2 || command -v php-fpm)
"$phpfpm" -n -F -y "$SOAK/php/php-fpm.conf" >logs/php-fpm.log 2>&1 &
started php-fpm $!
nginx -e "$SOAK/nginx/error.log" -p "$SOAK/nginx/" -c "$SOAK/nginx/nginx.conf" >logs/nginx.log 2>&1 &
started nginx $!

# --- cron -------------------------------------------------------------------
cron -f >logs/cron.log 2>&1 &
started cron $!

for ((i = 0; i < 200; i++)); do
	[ -S "$SOAK/php/fpm.sock" ] && [ -s "$SOAK/nginx/nginx.pid" ] && break
	sleep 0.05
done
[ -S "$SOAK/php/fpm.sock" ] || die "php-fpm did not start: $(cat logs/php-fpm.log)"
[ -s "$SOAK/nginx/nginx.pid" ] || die "nginx did not start: $(cat "$SOAK/nginx/error.log" logs/nginx.log)"

# --- the agent --------------------------------------------------------------
/srv/picket run --config "$BOOT" --mode enforce --learning-period "$LEARN" --host-root "$PRIV" >logs/agent.log 2>&1 &
started agent $!
log "daemons and agent started"
touch ctl/ready

# --- workloads --------------------------------------------------------------
# shellcheck source=workload.sh
source "$(dirname "$0")/workload.sh"
until [ -e ctl/start ] || [ -e ctl/stop ]; do sleep 0.1; done
if [ ! -e ctl/stop ]; then
	log "workloads start"
	docker_loop &
	build_loop &
	dpkg_loop &
	rotate_loop &
fi

# PID 1 stays (the namespace lives as long as it does; bash reaps the
# orphans) until the test closes its end of fd 3 — normally the test kills
# unshare first, but a test that dies without cleanup ends the namespace
# this way.
read -r _ <&3 || true
log "the test is gone: ending the namespace"
exit 0
