// Package scenarios runs real attacks (and a benign control) against a
// running agent and checks the incidents it records. Each scenario is a
// directory with run.sh (sourcing lib.sh) and expect.json; the runner in
// scenarios_test.go builds picket once, and per scenario starts a fresh
// agent (temporary state dir, observe mode, learning off), runs the script,
// polls `picket incidents --all --json` until the expectation holds or
// times out, and always tears everything down. Scenarios are sandboxed:
// networking only in network namespaces they create, files only in the
// scenario's temporary directory. See README.md for the format. The
// package has no non-test code.
package scenarios
