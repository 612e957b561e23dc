//go:build !linux

package instance

import "os"

// Without flock the agent runs unguarded rather than not at all: picket
// supports Linux; other platforms build for development only.
func tryLock(*os.File) (bool, error) { return false, nil }

func unlock(*os.File) error { return nil }
