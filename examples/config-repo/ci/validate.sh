#!/bin/sh
# Validate this config repository in any CI system (Jenkins, Drone, Buildkite,
# a cron job...): exits non-zero, with file:line:column: field: message for
# each problem, when the agents would refuse the policy.
#
#   ci/validate.sh            validate the fleet policy and every hosts/*.cue
#   PICKET=/path/to/picket    use that binary instead of installing one
#   PICKET_VERSION=v1.2.3     version to `go install` when picket is absent
#   VERIFY_SIGNATURES=1       also check that HEAD is signed by a key in
#                             trust/allowed_signers (what the agents require)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
picket=${PICKET:-}
if [ -z "$picket" ]; then
	if command -v picket >/dev/null 2>&1; then
		picket=picket
	else
		echo "ci/validate.sh: installing picket ${PICKET_VERSION:-latest}" >&2
		GOBIN=${GOBIN:-$(mktemp -d)} go install "github.com/picket-agent/picket/cmd/picket@${PICKET_VERSION:-latest}"
		picket=${GOBIN}/picket
	fi
fi
"$picket" validate "$root"
if [ "${VERIFY_SIGNATURES:-0}" = 1 ]; then
	if [ ! -s "$root/trust/allowed_signers" ]; then
		echo "ci/validate.sh: VERIFY_SIGNATURES=1 but trust/allowed_signers is empty" >&2
		exit 1
	fi
	git -C "$root" -c gpg.ssh.allowedSignersFile="$root/trust/allowed_signers" verify-commit HEAD
fi
