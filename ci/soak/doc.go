// Package soak holds the benign soak test: the real agent in enforce mode,
// after a short learning period, in network, PID and mount namespaces of
// its own, beside a real dockerd starting and stopping busybox containers,
// go build / go test running binaries from /tmp, real dpkg upgrades of a
// local package into the private root, cron jobs, log rotation, web
// traffic and an admin's ssh logins — and zero actions must follow. A real
// attack afterwards (a reverse shell below php-fpm) must still get its
// process tree killed. See soak_linux_test.go; run as root:
//
//	go test ./ci/soak/ -v -count=1
//
// It skips (or fails, with PICKET_REQUIRE_INTEGRATION=1) when root or one
// of the programs it runs is missing; ci/deps.sh installs them.
package soak
