#!/usr/bin/env bash
# install.sh — install (or remove) the picket agent on this host.
# Run ./install.sh --help for usage. Safe to run again: upgrades the binary
# and unit, never overwrites an existing /etc/picket/picket.cue.
set -euo pipefail

prog=${0##*/}
src_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
unit_src=$src_dir/examples/systemd/picket.service

usage() {
	cat <<EOF
Usage: $prog [--binary PATH] [--prefix DIR] [--destdir DIR] [--no-start]
       $prog --uninstall [--purge] [--prefix DIR] [--destdir DIR]

Installs the picket agent: the binary, the systemd unit, a default bootstrap
file, the trust and state directories; then enables and starts the service
when systemd runs this host. Run as root (or with --destdir to stage files).

Installed:
  \$DESTDIR\$PREFIX/bin/picket                 binary (0755)
  \$DESTDIR/etc/systemd/system/picket.service  unit (ExecStart -> \$PREFIX/bin/picket)
  \$DESTDIR/etc/picket/picket.cue              bootstrap (0600), only if absent
  \$DESTDIR/etc/picket/trust/                  trusted public keys (0700)
  \$DESTDIR/var/lib/picket/                    state (0700)

Options:
  --binary PATH   install this picket binary instead of building one
                  (without it: 'make build' in $src_dir, which needs Go)
  --prefix DIR    installation prefix (default: \$PREFIX or /usr/local)
  --destdir DIR   stage under DIR, e.g. for packaging (default: \$DESTDIR);
                  systemd is then left alone
  --no-start      do not enable or start the service
  --uninstall     stop and disable the service, remove binary and unit;
                  keeps /etc/picket and /var/lib/picket
  --purge         with --uninstall (implies it): also delete /etc/picket
                  (config, keys, credentials) and /var/lib/picket (audit
                  journal, baselines)
  -h, --help      show this help

Environment: PREFIX, DESTDIR (as the options), GO (the go command used to
build; default: go, then /usr/local/go/bin/go).

Exit status: 0 done, 1 failed, 2 usage error, 3 the bootstrap file is
invalid (nothing was changed).
EOF
}

log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}
usage_error() {
	printf '%s: %s (see --help)\n' "$prog" "$*" >&2
	exit 2
}

binary=""
prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
action=install
purge=0
start=1

while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	--binary | --prefix | --destdir)
		[[ $# -ge 2 ]] || usage_error "$1 needs a value"
		case $1 in
		--binary) binary=$2 ;;
		--prefix) prefix=$2 ;;
		--destdir) destdir=$2 ;;
		esac
		shift 2
		;;
	--binary=*) binary=${1#*=} && shift ;;
	--prefix=*) prefix=${1#*=} && shift ;;
	--destdir=*) destdir=${1#*=} && shift ;;
	--no-start) start=0 && shift ;;
	--uninstall) action=uninstall && shift ;;
	--purge) action=uninstall purge=1 && shift ;;
	*) usage_error "unknown argument: $1" ;;
	esac
done

# The prefix ends up in the unit's ExecStart=: keep it a plain absolute path.
[[ $prefix =~ ^/[A-Za-z0-9._/+-]*$ ]] || usage_error "--prefix must be an absolute path without spaces or special characters: $prefix"
prefix=${prefix%/}
[[ -n $prefix ]] || prefix=/
if [[ -n $destdir ]]; then
	[[ $destdir == /* ]] || destdir=$PWD/$destdir
	destdir=${destdir%/}
fi

if [[ -z $destdir && $EUID -ne 0 ]]; then
	die "must run as root to change the system (try: sudo $0 ...), or stage the files with --destdir DIR"
fi

bin_path=${prefix%/}/bin/picket # as seen by the running system
bin_dest=$destdir$bin_path
stop_path=${prefix%/}/sbin/picket-emergency-stop # works without the binary or the database
stop_dest=$destdir$stop_path
unit_dest=$destdir/etc/systemd/system/picket.service
conf_dir=$destdir/etc/picket
bootstrap=$conf_dir/picket.cue
trust_dir=$conf_dir/trust
state_dir=$destdir/var/lib/picket

# systemd is managed only on the live system (no DESTDIR) when it is PID 1.
systemd_live=0
if [[ -z $destdir && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
	systemd_live=1
fi

# put SRC DEST MODE: atomically replace DEST with a copy of SRC. The
# temporary file lives next to DEST (same file system, and on SELinux hosts
# the label of DEST's directory); rename avoids "text file busy" when DEST
# is the running binary.
put() {
	local src=$1 dest=$2 mode=$3 tmp
	install -d -m 0755 "$(dirname -- "$dest")"
	tmp=$(mktemp "$(dirname -- "$dest")/.${dest##*/}.XXXXXX")
	if ! install -m "$mode" "$src" "$tmp"; then
		rm -f -- "$tmp"
		die "cannot write $dest"
	fi
	mv -f -- "$tmp" "$dest"
}

relabel() {
	if [[ -z $destdir ]] && command -v restorecon >/dev/null 2>&1; then
		restorecon -F "$@" >/dev/null 2>&1 || true
	fi
}

find_go() {
	if [[ -n ${GO:-} ]]; then
		command -v -- "$GO" 2>/dev/null || return 1
		return 0
	fi
	command -v go 2>/dev/null && return 0
	# sudo's secure_path usually lacks the standard Go location.
	[[ -x /usr/local/go/bin/go ]] && echo /usr/local/go/bin/go && return 0
	return 1
}

build_binary() {
	local go
	if ! go=$(find_go); then
		die "no --binary given and the Go toolchain (go) is not installed or not in PATH.
  Either build as your user and pass the result:
      make build && sudo $0 --binary bin/picket
  or download a release binary and run: sudo $0 --binary ./picket"
	fi
	[[ -f $src_dir/go.mod && -d $src_dir/cmd/picket ]] || die "no --binary given and $src_dir is not a picket source tree"
	log "building picket with $go"
	if command -v make >/dev/null 2>&1; then
		make -C "$src_dir" --no-print-directory build GO="$go" >&2 || die "build failed"
	else
		(cd -- "$src_dir" && CGO_ENABLED=0 "$go" build -trimpath -ldflags '-s -w' -o bin/picket ./cmd/picket) >&2 || die "build failed"
	fi
	binary=$src_dir/bin/picket
}

do_install() {
	[[ -f $unit_src ]] || die "missing $unit_src (run this script from a picket source tree)"

	if [[ -z $binary ]]; then
		build_binary
	fi
	[[ -f $binary && -x $binary ]] || die "--binary $binary: not an executable file"
	local version
	version=$("$binary" version 2>&1) || die "--binary $binary does not run on this host (wrong architecture?): $version"

	# An operator's bootstrap file is checked before anything changes, with
	# the binary about to be installed (its schema is the one that counts).
	if [[ -e $bootstrap ]]; then
		if ! "$binary" validate --bootstrap "$bootstrap" >&2; then
			printf '%s: error: %s is invalid for this picket version; fix it and run %s again (nothing was changed)\n' "$prog" "$bootstrap" "$prog" >&2
			exit 3
		fi
	fi

	# Binary.
	put "$binary" "$bin_dest" 0755
	relabel "$bin_dest"
	log "installed $bin_dest ($version)"

	# The standalone emergency stop, from the binary that goes with it.
	local stop_tmp
	stop_tmp=$(mktemp)
	"$binary" emergency-stop --print-script >"$stop_tmp" || { rm -f -- "$stop_tmp"; die "cannot extract the emergency-stop script from $binary"; }
	put "$stop_tmp" "$stop_dest" 0755
	rm -f -- "$stop_tmp"
	relabel "$stop_dest"
	log "installed $stop_dest (undoes every picket action without the binary or the database)"

	# Directories: config and keys are root's only, as is the state.
	install -d -m 0700 "$conf_dir" "$trust_dir" "$state_dir"
	relabel "$conf_dir" "$state_dir"
	log "directories $conf_dir, $trust_dir, $state_dir (0700)"

	# Bootstrap file, only if the operator has none.
	if [[ -e $bootstrap ]]; then
		log "kept existing $bootstrap"
	else
		local tmp
		tmp=$(mktemp "$conf_dir/.picket.cue.XXXXXX")
		default_bootstrap >"$tmp"
		chmod 0600 "$tmp"
		mv -f -- "$tmp" "$bootstrap"
		relabel "$bootstrap"
		log "wrote default $bootstrap (no repository: the embedded default policy applies)"
	fi
	"$bin_dest" validate --bootstrap "$bootstrap" || die "$bootstrap does not validate (run: $bin_path validate --bootstrap /etc/picket/picket.cue)"

	# Unit, pointing at the installed binary.
	local unit_tmp
	unit_tmp=$(mktemp)
	# shellcheck disable=SC2064 # expand now: the path is local
	trap "rm -f -- '$unit_tmp'" EXIT
	sed "s|^ExecStart=/usr/local/bin/picket |ExecStart=$bin_path |" "$unit_src" >"$unit_tmp"
	grep -qxF "ExecStart=$bin_path run" "$unit_tmp" || die "$unit_src: no 'ExecStart=/usr/local/bin/picket run' line to rewrite"
	put "$unit_tmp" "$unit_dest" 0644
	relabel "$unit_dest"
	log "installed $unit_dest"

	if [[ $systemd_live -eq 1 ]]; then
		systemctl daemon-reload
		if [[ $start -eq 1 ]]; then
			systemctl enable picket.service
			# restart, not start: after an upgrade the new binary must run.
			systemctl restart picket.service || die "picket.service did not start; see: systemctl status picket; journalctl -u picket -n 50"
			log "picket is enabled and running"
			cat <<EOF

Check it:        systemctl status picket; journalctl -u picket -f; $bin_path status
Configure it:    edit /etc/picket/picket.cue (repository URL), put trusted keys
                 in /etc/picket/trust/ (allowed_signers and/or *.asc), the git
                 credentials in /etc/picket/credentials (0600), then
                 systemctl restart picket
EOF
		else
			log "not started (--no-start); to start it now and at every boot:"
			echo "    systemctl enable --now picket"
		fi
	elif [[ -n $destdir ]]; then
		cat <<EOF

Files staged under $destdir. On the target host, as root:
    systemctl daemon-reload
    systemctl enable --now picket
EOF
	else
		cat <<EOF

systemd is not running this host (no /run/systemd/system), so the service
was not enabled. Start the agent under your init system or by hand:
    $bin_path run
With systemd, as root:
    systemctl daemon-reload
    systemctl enable --now picket
EOF
	fi
}

do_uninstall() {
	if [[ $systemd_live -eq 1 ]]; then
		if systemctl cat picket.service >/dev/null 2>&1; then
			systemctl disable --now picket.service || log "warning: could not stop/disable picket.service"
		fi
	fi
	local f
	for f in "$unit_dest" "$bin_dest" "$stop_dest"; do
		if [[ -e $f || -L $f ]]; then
			rm -f -- "$f"
			log "removed $f"
		fi
	done
	if [[ $systemd_live -eq 1 ]]; then
		systemctl daemon-reload
		systemctl reset-failed picket.service >/dev/null 2>&1 || true
	fi
	if [[ $purge -eq 1 ]]; then
		rm -rf -- "$conf_dir" "$state_dir"
		log "purged $conf_dir (config, trust keys, credentials) and $state_dir (audit journal, baselines)"
	else
		log "kept $conf_dir (config, trust keys, credentials) and $state_dir (audit journal, baselines); run '$prog --purge' to delete them too"
	fi
}

# The default bootstrap: every field at its default (kernel host name, no
# repository, so the embedded default policy runs without sync).
default_bootstrap() {
	cat <<'EOF'
// /etc/picket/picket.cue — what this host needs to know before it can read
// its policy. Written by install.sh; never overwritten by it. Check a change
// with:  picket validate --bootstrap /etc/picket/picket.cue
// then:  systemctl restart picket
//
// Every field is optional. As installed, nothing is set: the agent uses the
// kernel host name and, with no repository, runs the embedded default
// policy (read-only during its learning period) without any git sync.

// The name of this host in the config repository (hosts/<hostname>.cue and
// the branch hosts/<hostname>). Default: the kernel host name.
// hostname: "web1"

// The signed config repository (SSH git@host:path, ssh://..., https://...)
// and the branch holding the fleet policy.
// repository: {
// 	url:    "git@git.example.com:ops/picket-config.git"
// 	branch: "main"
// }

// Public keys trusted to sign the config branch: an SSH allowed_signers
// file and/or OpenPGP *.asc keys. Local on purpose, never from the
// repository alone.
// trust_dir: "/etc/picket/trust"

// SQLite state, the local clone and the outbox of unpushed commits.
// state_dir: "/var/lib/picket"

// Git credentials (SSH private key or HTTPS token), mode 0600. They need
// write access to hosts/* and proposals/* only, never to main.
// credentials: "/etc/picket/credentials"
EOF
}

case $action in
install) do_install ;;
uninstall) do_uninstall ;;
esac
