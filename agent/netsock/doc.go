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
// done in 100 ms, most of a connect scan). With Options.Conntrack the
// sensor also runs an agent/conntrack listener per network namespace (the
// agent's own, those of processes, the named ones under /run/netns and
// /run/docker/netns; bounded, closed when the namespace goes) and turns
// each outbound NEW flow into the same event.NetConnect, Source
// SourceConntrack, tied to its process through the socket table read at
// once; when the socket is already gone the event says the process is not
// known, never guessed. A connection reported either way is not reported
// again by the other. Live says where conntrack is unavailable or not
// active (nothing registered its hooks in the namespace).
package netsock
