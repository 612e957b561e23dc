//go:build !linux

package selftest

func capProbe() []Result {
	return []Result{{"capabilities", Missing, "capability probing is Linux-only"}}
}
