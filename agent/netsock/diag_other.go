//go:build !linux

package netsock

import "errors"

func readDiag(int, string) ([]Entry, error) {
	return nil, errors.New("netsock: sock_diag is Linux only")
}
