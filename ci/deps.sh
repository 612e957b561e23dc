#!/usr/bin/env bash
# Installs what the integration tests need on a fresh Debian 12 machine.
# Idempotent; does nothing for packages already present.
set -euo pipefail
need=()
for pair in journalctl:systemd systemd-cat:systemd unshare:util-linux nsenter:util-linux git:git ip:iproute2 sshd:openssh-server ssh-keygen:openssh-client gpg:gnupg setpriv:util-linux nginx:nginx-light php-fpm8.2:php8.2-fpm curl:curl nc:netcat-openbsd python3:python3 dockerd:docker.io busybox:busybox-static nft:nftables chage:passwd cron:cron logrotate:logrotate docker:docker.io ssh:openssh-client dpkg-deb:dpkg; do
	bin=${pair%%:*} pkg=${pair##*:}
	command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
[ -x /lib/systemd/systemd-journald ] || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "ci/deps.sh: missing ${need[*]} and not root; install them first" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# The tests start nginx, php-fpm and sshd themselves, inside namespaces
	# and on their own ports; the packages' own services must not start on
	# the machine. A policy-rc.d that says "no" does that for the install.
	created_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
fi
echo "ci/deps.sh: test dependencies present"
