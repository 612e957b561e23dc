//go:build !linux

package persist

// fileCapabilities: file capabilities are a Linux feature.
func fileCapabilities(string) ([]byte, error) { return nil, nil }
