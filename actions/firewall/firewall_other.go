//go:build !linux

package firewall

import (
	"context"
	"net/netip"
	"time"
)

// Firewall is a stand-in off Linux: New fails with ErrUnsupported.
type Firewall struct{}

// New fails: nftables exists only on Linux.
func New(Options) (*Firewall, error) { return nil, ErrUnsupported }

func (*Firewall) Close() error                            { return ErrUnsupported }
func (*Firewall) Ensure() error                           { return ErrUnsupported }
func (*Firewall) Present() (bool, error)                  { return false, ErrUnsupported }
func (*Firewall) Remove() error                           { return ErrUnsupported }
func (*Firewall) Block(netip.Prefix, time.Duration) error { return ErrUnsupported }
func (*Firewall) BlockMany([]netip.Prefix, time.Duration) error {
	return ErrUnsupported
}
func (*Firewall) AddMany(Direction, []netip.Prefix, time.Duration) ([]netip.Prefix, error) {
	return nil, ErrUnsupported
}
func (*Firewall) DeleteMany(Direction, []netip.Prefix) error      { return ErrUnsupported }
func (*Firewall) Unblock(netip.Prefix) error                      { return ErrUnsupported }
func (*Firewall) BlockOutbound(netip.Prefix, time.Duration) error { return ErrUnsupported }
func (*Firewall) UnblockOutbound(netip.Prefix) error              { return ErrUnsupported }
func (*Firewall) RateLimit(netip.Prefix, time.Duration) error     { return ErrUnsupported }
func (*Firewall) Unlimit(netip.Prefix) error                      { return ErrUnsupported }
func (*Firewall) SetAdmin([]netip.Prefix) error                   { return ErrUnsupported }
func (*Firewall) PauseSSH([]uint16, time.Duration) error          { return ErrUnsupported }
func (*Firewall) ResumeSSH([]uint16) error                        { return ErrUnsupported }
func (*Firewall) Contain(Containment, time.Duration) error        { return ErrUnsupported }
func (*Firewall) Uncontain() error                                { return ErrUnsupported }
func (*Firewall) List() (State, error)                            { return State{}, ErrUnsupported }
func (*Firewall) Watch(context.Context, func()) error             { return ErrUnsupported }
