// Package ci holds tests of the repository's scripts (install.sh) and
// shipped examples (the systemd unit in examples/systemd): they run the
// script against a staging directory and check the unit the way systemd
// reads it. The package has no non-test code; the shell scripts CI runs
// (deps.sh and friends) live next to it.
package ci
