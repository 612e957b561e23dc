//go:build !linux

package agent

import "errors"

// freeBytes is unknown here: the retry then just tries the commit.
func freeBytes(string) (uint64, error) {
	return 0, errors.New("agent: free space unknown on this platform")
}
