// Package netsock is the network sensor and the network invariants.
//
// The Sensor polls the kernel's socket tables (/proc/<pid>/net/{tcp,tcp6,
// udp,udp6}, once per network namespace, through a representative process
// of each) and diffs them: a new listener becomes event.NetListen, a
// vanished one event.NetUnlisten, a new outbound connection
// event.NetConnect. Sockets are tied to their owning process through the
// socket inode found in /proc/<pid>/fd, so each event carries the pid,
// executable, user and command line of the process that opened it, and
// Socket.NetNS names the namespace when it is not the agent's own (a
// container, an `ip netns`). The agent runs it next to the process sensor;
// the Detector consumes its events (and process execs) and raises the
// net.* signals for the correlator.
//
// Polling misses connections shorter than the interval (a curl that is
// done in 100 ms, most of a connect scan). Conntrack NEW events
// (NETLINK_NETFILTER, NFNLGRP_CONNTRACK_NEW) would close that gap but are
// not implemented yet; Live says so in status.
package netsock
