//go:build !linux

package proc

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

func readFile(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return n, err
}

func readlink(path string) (string, error) { return os.Readlink(path) }

func deletedExe(string) bool { return true }

func isRace(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
