# shellcheck shell=bash
# workload.sh — the benign workloads of the soak test, sourced by init.sh
# (PID 1 of the test's namespaces; $SOAK, $PRIV, $GO_BIN, $GOCACHE set).
# Each loop runs until $SOAK/ctl/stop exists and records every step in
# $SOAK/progress/<loop>.log as "<epoch> ok" or "<epoch> FAIL rc=N: cmd": a
# step the agent killed ends with a signal (rc > 128) and shows up there.
# Cron's jobs (crontab and cron.d in the private /etc) and the remote
# workloads (admin ssh logins, web clients) are driven by the test itself.

running() { [ ! -e "$SOAK/ctl/stop" ]; }

progress() { printf '%s %s\n' "$EPOCHREALTIME" "$2" >>"$SOAK/progress/$1.log"; }

# step LOOP CMD... — run CMD, output to logs/LOOP.out, record the outcome.
step() {
	local loop=$1 rc=0
	shift
	"$@" >>"$SOAK/logs/$loop.out" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		progress "$loop" ok
	else
		progress "$loop" "FAIL rc=$rc: $*"
	fi
	return 0
}

# pause N — sleep N seconds unless the test said stop.
pause() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		running || return 0
		sleep 0.1
	done
}

# Containers started and stopped over and over: short-lived `docker run
# --rm` (runc init, containerd-shim, a busybox shell) and a detached one,
# exec'd into (runc exec) and stopped by `docker stop` (SIGTERM, then
# SIGKILL after the grace time).
docker_loop() {
	local i=0 id
	while running; do
		i=$((i + 1))
		step docker docker run --rm --network none --name "soak-run-$i" busybox:soak sh -c 'echo hello from a container; sleep 1'
		if id=$(docker run -d --network none --name "soak-svc-$i" busybox:soak sleep 30 2>>"$SOAK/logs/docker.out"); then
			step docker docker exec "$id" sh -c 'echo exec into a running container; sleep 1'
			step docker docker stop -t 1 "$id"
			step docker docker rm "$id"
		else
			progress docker "FAIL docker run -d"
		fi
	done
	progress docker done
}

# A developer's build: go build and go test of a small module whose source
# changes every round (so something is really compiled), the built binary
# and the test binary both executed from /tmp (GOTMPDIR, -o under $SOAK).
build_loop() {
	local i=0
	cd "$SOAK/gowork"
	export GOTMPDIR=$SOAK/gotmp TMPDIR=$SOAK/tmp GOCACHE GOPATH=$SOAK/gopath GOPROXY=off GOTOOLCHAIN=local \
		GOFLAGS= GOENV=off CGO_ENABLED=0 GOWORK=off
	while running; do
		i=$((i + 1))
		printf 'package main\n\nconst build = %d\n' "$i" >build.go
		step build "$GO_BIN" build -o "$SOAK/gowork/bin/app" .
		step build "$SOAK/gowork/bin/app" 1500ms
		step build "$GO_BIN" test -count=1 .
		step build "$GO_BIN" run . 1s
		pause 2
	done
	progress build done
}

# Package updates: a real dpkg -i of successive versions of a small .deb
# into the private root (new /usr/bin binary, systemd unit, conffile in
# /etc each time), the way unattended-upgrades replaces files.
dpkg_loop() {
	local v=1 n
	n=$(find "$SOAK/debs" -name '*.deb' | wc -l)
	while running; do
		step dpkg dpkg --root="$PRIV" --log=/var/log/dpkg.log --force-confnew -i "$SOAK/debs/soak-tool_$v.deb"
		v=$((v % n + 1))
		pause 3
	done
	progress dpkg done
}

# Log rotation, as logrotate.timer would run it: auth.log with
# copytruncate, nginx's access log with create + USR1 (Debian's way).
rotate_loop() {
	while running; do
		pause 8
		running || break
		step rotate logrotate -f -s /var/log/logrotate.state "$SOAK/logrotate.conf"
	done
	progress rotate done
}
