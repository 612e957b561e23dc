#!/usr/bin/env bash
# make fuzz: run every Go fuzz target for a while (default 10s each).
# Minimisation of each new corpus entry is capped (default 1s): with
# multi-kilobyte seeds (CUE files, Docker JSON, signed commits) the
# default of 60s would spend a short run minimising instead of fuzzing.
# One worker, since the machines this runs on are small and shared.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
t=${1:-10s}
m=${FUZZ_MINIMIZE:-1s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' "$dir"/*_test.go 2>/dev/null | awk '{print $2}'); do
		echo "== $pkg $f ($t)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" -fuzzminimizetime "$m" -parallel "${FUZZ_PARALLEL:-1}" "$pkg"
	done
done
