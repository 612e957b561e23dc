// Package proc is the process sensor: it turns process creation, execution
// and exit on the host into event.ProcExec, event.ProcFork and
// event.ProcExit events. Its consumers are the process table (which builds
// lineage from these events) and, through it, the process invariants (web
// server spawning a shell, execution from /tmp, deleted binaries, ...).
//
// Two mechanisms feed it. The netlink proc connector (Linux, CAP_NET_ADMIN,
// initial user and pid namespaces) reports every fork, exec and exit as it
// happens; on each exec the sensor reads /proc/<pid> at once, because the
// kernel event carries only pids and a short-lived process may be gone a
// millisecond later. Where the connector cannot be used, a periodic /proc
// scan produces the same events by diffing, marked Detail "scan" so
// consumers know processes shorter than the interval were missed.
//
// Loss is never silent: the connector's per-CPU sequence numbers and
// ENOBUFS are counted as lost events and trigger a full /proc rescan
// (events with Detail "rescan"), so the process table converges again.
package proc
