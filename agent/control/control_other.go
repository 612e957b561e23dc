//go:build !linux

package control

import (
	"errors"
	"net"
	"syscall"
)

func listenPrivate(path string) (*net.UnixListener, error) {
	return nil, errors.New("control: the control socket is Linux-only")
}

// peerCred refuses everyone: without SO_PEERCRED the peer is unknown.
func peerCred(c *net.UnixConn) (Peer, error) {
	return Peer{UID: -1}, errors.New("control: peer credentials unavailable on this platform")
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
