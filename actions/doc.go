// Package actions is picket's hands and the engine that keeps them safe.
//
// The agent's responder turns an incident into plans; the Engine takes each
// plan through guard → snapshot → apply → health check → keep or roll back
// → expire, and journals every step in state (the actions table) before
// and after it touches the host, so that a kill -9 at any point leaves a
// journal the next start repairs: an action caught half-applied is undone
// from its snapshot, one that expired while the agent was down is rolled
// back, one the host lost (a flushed firewall) is re-asserted, and kernel
// state nobody asked for is removed.
//
// Executors (firewall, process tree, account, SSH pause, container) live in
// sub-packages and know nothing of the journal; the Engine adapts them
// through the small Executor interface declared here. Every apply, renewal,
// expiry, rollback, refusal and suppression is an audit entry with its
// reason, which the syncer exports to the host branch.
//
// Safety rules that hold whatever the policy says: nothing is ever done to
// the admin whitelist, loopback, the config repository's remote, the host's
// own addresses, the agent, PID 1, kernel threads, sshd's listener or the
// root account; every action has a TTL capped by actions.max_ttl; during
// the learning period and in observe mode plans are journaled as
// suppressed and nothing is applied; more than actions.max_per_hour
// actions in an hour trips a circuit breaker to observe-only until an
// operator runs `picket actions resume`.
//
// Shutdown contract: Run returns when its context ends, after the step in
// progress is journaled; actions in force stay in force (their expiry is
// in the journal and, for firewall elements, in the kernel) and the next
// start re-arms them.
package actions
