// Package conntrack listens to the kernel's connection-tracking NEW events
// (netlink NETLINK_NETFILTER, multicast group NFNLGRP_CONNTRACK_NEW) in one
// network namespace and hands each new flow on as a plain Flow, classified
// as outbound (its original source is one of the namespace's own
// addresses), inbound or forwarded. The network sensor (agent/netsock) runs
// one Listener per network namespace to see connections too short for its
// /proc/net poll: a curl done in 100 ms, most of a connect scan.
//
// Conntrack knows no process: tying a flow to one is the caller's job. It
// is also lossy by design: when the listener's receive buffer overflows the
// kernel drops events and reports ENOBUFS once; the Listener sizes its
// buffer large, counts overruns in Stats and keeps listening. Any other
// socket error is counted and the socket re-dialled with backoff, so the
// agent degrades and never stops for it.
//
// Conntrack only tracks (and so only reports) connections in a namespace
// where something registered its netfilter hooks: an nftables or iptables
// rule that uses ct (state, status, mark…), NAT, or a container runtime
// (Docker does in the host namespace). The module loaded is not enough:
// /proc/net/nf_conntrack exists in every namespace once it is. The Listener
// never loads rules itself; it asks the kernel how many connections the
// namespace tracks and, when that is 0 and no event came, says in
// Stats.Inactive that no event is possible there.
package conntrack
