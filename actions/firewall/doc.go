// Package firewall is picket's nftables executor: temporary blocks of
// sources, outbound destinations and per-source rate limits, SSH pause and
// containment mode, all held in one table of picket's own that nothing else
// writes to. The action engine (package actions) drives it: it journals the
// state it wants and calls Ensure, Block, Contain, … and List to reconcile;
// `picket actions` shows List. Every call is idempotent.
//
// It talks netlink through github.com/google/nftables; the nft binary is
// never needed at run time.
//
// # Layout of table inet picket
//
//	sets (v4 and v6 apart; address sets are interval sets so CIDRs work)
//	  block4/6        sources dropped on input and forward        timeout per element
//	  out4/6          destinations dropped on output and forward  timeout per element
//	  ratelimit4/6    sources whose new connections are limited   timeout per element
//	  meter4/6        per-source token buckets (dynamic, filled by the kernel)
//	  admin4/6        the admin whitelist: never blocked, limited or paused
//	  sshpause        TCP ports whose new connections are dropped  timeout per element
//	  contain_active  nfproto ipv4/ipv6 while containment is on   timeout per element
//	  contain_allow4/6, contain_ssh  containment's whitelist and paused ports
//
//	chains (base chains at priority filter-10, policy accept)
//	  input    lo accept; admin accept; block drop; sshpause drop;
//	           containment or ratelimit → goto limit
//	  forward  admin accept; block drop; out drop; containment → contain_fwd;
//	           ratelimit → goto limit
//	  output   out drop; containment → contain_out
//	  limit        per-source meter: over the rate → drop
//	  contain_out  lo, established/related, allow, NDP, DHCP accept; else drop
//	  contain_fwd  established/related accept, DNAT'd (published ports) → limit,
//	               allow accept; else drop
//
// # Why it is built this way
//
// Every element that acts carries a kernel timeout, and containment itself is
// an element (contain_active) rather than a rule: so every action ends at its
// TTL even when the agent is dead, and the rules never change while actions
// come and go — applying and rolling back is a set update, one atomic batch.
//
// The forward hook matters because Docker-published ports are DNAT'd in
// prerouting and then cross forward, never input.
//
// A drop in any base chain is final for the packet whatever other tables say,
// while an accept only ends our own chain: so our drops win over other
// tables' accepts and our accepts (admin, loopback) never open anything that
// another table closes.
//
// Emergency stop is deleting the table: nothing picket adds lives outside it.
// Debian's nftables.conf starts with "flush ruleset" and firewalld flushes on
// restart, so Watch reports deletions and edits of the table by others and
// the engine re-asserts at once.
package firewall
