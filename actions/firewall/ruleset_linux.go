package firewall

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Object names inside the table. Changing a rule changes its comment, which
// makes Ensure rebuild the rules of an older agent's table.
const (
	setBlock4, setBlock6       = "block4", "block6"
	setOut4, setOut6           = "out4", "out6"
	setRate4, setRate6         = "ratelimit4", "ratelimit6"
	setMeter4, setMeter6       = "meter4", "meter6"
	setAdmin4, setAdmin6       = "admin4", "admin6"
	setSSH                     = "sshpause"
	setActive                  = "contain_active"
	setAllow4, setAllow6       = "contain_allow4", "contain_allow6"
	setContainSSH              = "contain_ssh"
	chainInput, chainForward   = "input", "forward"
	chainOutput, chainLimit    = "output", "limit"
	chainContainOut, chainCFwd = "contain_out", "contain_fwd"

	// priority filter-10: before the usual filter chains (iptables-nft,
	// firewalld, Docker), though a drop is final whatever the order.
	chainPriority = -10
	// meterTimeout is how long a source's token bucket lives after its last
	// new connection; a bucket idle that long is full again anyway.
	meterTimeout = 5 * time.Second
	meterSize    = 65535
	// ipsDstNAT is IPS_DST_NAT of linux/netfilter/nf_conntrack_common.h.
	ipsDstNAT = 1 << 5
)

type setSpec struct {
	name     string
	key      nftables.SetDatatype
	interval bool
	timeout  bool
	dynamic  bool
	defTTL   time.Duration
	size     uint32
}

func setSpecs() []setSpec {
	v4 := nftables.TypeIPAddr
	v6 := nftables.TypeIP6Addr
	timed := func(name string, key nftables.SetDatatype) setSpec {
		return setSpec{name: name, key: key, interval: true, timeout: true}
	}
	return []setSpec{
		timed(setBlock4, v4), timed(setBlock6, v6),
		timed(setOut4, v4), timed(setOut6, v6),
		timed(setRate4, v4), timed(setRate6, v6),
		{name: setMeter4, key: v4, timeout: true, dynamic: true, defTTL: meterTimeout, size: meterSize},
		{name: setMeter6, key: v6, timeout: true, dynamic: true, defTTL: meterTimeout, size: meterSize},
		{name: setAdmin4, key: v4, interval: true},
		{name: setAdmin6, key: v6, interval: true},
		{name: setSSH, key: nftables.TypeInetService, timeout: true},
		{name: setActive, key: nftables.TypeNFProto, timeout: true},
		timed(setAllow4, v4), timed(setAllow6, v6),
		{name: setContainSSH, key: nftables.TypeInetService, timeout: true},
	}
}

func (s setSpec) set(t *nftables.Table) *nftables.Set {
	return &nftables.Set{
		Table: t, Name: s.name, KeyType: s.key,
		Interval: s.interval, HasTimeout: s.timeout, Dynamic: s.dynamic,
		Timeout: s.defTTL, Size: s.size,
	}
}

// matches says whether a set read from the kernel is the one we want.
func (s setSpec) matches(k *nftables.Set) bool {
	return k.KeyType.GetNFTMagic() == s.key.GetNFTMagic() && k.KeyType.Bytes == s.key.Bytes &&
		k.Interval == s.interval && k.HasTimeout == s.timeout && k.Dynamic == s.dynamic &&
		!k.IsMap && !k.Constant && k.Timeout == s.defTTL
}

type chainSpec struct {
	name string
	hook *nftables.ChainHook // nil for a regular chain
}

var chainSpecs = []chainSpec{
	{chainInput, nftables.ChainHookInput},
	{chainForward, nftables.ChainHookForward},
	{chainOutput, nftables.ChainHookOutput},
	{chainLimit, nil},
	{chainContainOut, nil},
	{chainCFwd, nil},
}

func (c chainSpec) chain(t *nftables.Table) *nftables.Chain {
	ch := &nftables.Chain{Name: c.name, Table: t}
	if c.hook != nil {
		accept := nftables.ChainPolicyAccept
		ch.Hooknum = c.hook
		ch.Priority = nftables.ChainPriorityRef(chainPriority)
		ch.Type = nftables.ChainTypeFilter
		ch.Policy = &accept
	}
	return ch
}

func (c chainSpec) matches(k *nftables.Chain) bool {
	if c.hook == nil {
		return k.Hooknum == nil
	}
	return k.Hooknum != nil && *k.Hooknum == *c.hook &&
		k.Priority != nil && *k.Priority == chainPriority &&
		k.Type == nftables.ChainTypeFilter &&
		k.Policy != nil && *k.Policy == nftables.ChainPolicyAccept
}

// ruleSpec is one rule; its comment identifies it when the table is read
// back, so it says what the rule does and carries its parameters.
type ruleSpec struct {
	comment string
	exprs   []expr.Any
}

// rules is the whole rule layout, chain by chain (see doc.go).
func (f *Firewall) rules() map[string][]ruleSpec {
	const (
		v4 = unix.NFPROTO_IPV4
		v6 = unix.NFPROTO_IPV6
	)
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	gotoLimit := &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainLimit}
	r := func(comment string, parts ...[]expr.Any) ruleSpec {
		return ruleSpec{comment: "picket: " + comment, exprs: slices.Concat(parts...)}
	}
	v := func(e ...expr.Any) []expr.Any { return e }
	saddrIn := func(fam byte, set string) []expr.Any {
		return slices.Concat(nfproto(fam), v(addr(fam, true), lookup(set)))
	}
	daddrIn := func(fam byte, set string) []expr.Any {
		return slices.Concat(nfproto(fam), v(addr(fam, false), lookup(set)))
	}
	active := v(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, lookup(setActive))
	newConn := ctState(expr.CtStateBitNEW)
	established := ctState(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
	rate := fmt.Sprintf("%d/second burst %d", f.opt.RatePerSecond, f.opt.RateBurst)

	return map[string][]ruleSpec{
		chainInput: {
			r("loopback is never touched", ifIndex(expr.MetaKeyIIF, 1), v(accept)),
			r("admin whitelist (v4)", saddrIn(v4, setAdmin4), v(accept)),
			r("admin whitelist (v6)", saddrIn(v6, setAdmin6), v(accept)),
			r("blocked sources (v4)", saddrIn(v4, setBlock4), v(drop)),
			r("blocked sources (v6)", saddrIn(v6, setBlock6), v(drop)),
			r("paused ssh ports", tcpDport(setSSH), newConn, v(drop)),
			r("containment: paused ssh ports", tcpDport(setContainSSH), newConn, v(drop)),
			r("containment: limit new connections", newConn, active, v(gotoLimit)),
			r("rate-limited sources (v4)", newConn, saddrIn(v4, setRate4), v(gotoLimit)),
			r("rate-limited sources (v6)", newConn, saddrIn(v6, setRate6), v(gotoLimit)),
		},
		chainForward: {
			r("admin whitelist (v4)", saddrIn(v4, setAdmin4), v(accept)),
			r("admin whitelist (v6)", saddrIn(v6, setAdmin6), v(accept)),
			r("blocked sources (v4)", saddrIn(v4, setBlock4), v(drop)),
			r("blocked sources (v6)", saddrIn(v6, setBlock6), v(drop)),
			r("blocked destinations (v4)", daddrIn(v4, setOut4), v(drop)),
			r("blocked destinations (v6)", daddrIn(v6, setOut6), v(drop)),
			r("containment", active, v(&expr.Verdict{Kind: expr.VerdictJump, Chain: chainCFwd})),
			r("rate-limited sources (v4)", newConn, saddrIn(v4, setRate4), v(gotoLimit)),
			r("rate-limited sources (v6)", newConn, saddrIn(v6, setRate6), v(gotoLimit)),
		},
		chainOutput: {
			r("blocked destinations (v4)", daddrIn(v4, setOut4), v(drop)),
			r("blocked destinations (v6)", daddrIn(v6, setOut6), v(drop)),
			r("containment", active, v(&expr.Verdict{Kind: expr.VerdictJump, Chain: chainContainOut})),
		},
		chainLimit: {
			r("per-source limit "+rate+" (v4)", nfproto(v4), v(addr(v4, true), f.meter(setMeter4)), v(drop)),
			r("per-source limit "+rate+" (v6)", nfproto(v6), v(addr(v6, true), f.meter(setMeter6)), v(drop)),
		},
		chainContainOut: {
			r("loopback", ifIndex(expr.MetaKeyOIF, 1), v(accept)),
			r("established flows", established, v(accept)),
			r("whitelisted destinations (v4)", daddrIn(v4, setAllow4), v(accept)),
			r("whitelisted destinations (v6)", daddrIn(v6, setAllow6), v(accept)),
			// Without neighbour discovery IPv6 stops, replies to the admin
			// included; without DHCP the host may lose its address.
			r("neighbour discovery", icmp6Types(133, 136), v(accept)),
			r("dhcp (v4)", nfproto(v4), udpDport(67), v(accept)),
			r("dhcp (v6)", nfproto(v6), udpDport(547), v(accept)),
			r("everything else", v(drop)),
		},
		chainCFwd: {
			r("established flows", established, v(accept)),
			// DNAT'd means inbound to a published port: limited like any
			// inbound connection, not cut.
			r("published ports: limit new connections", ctStatus(ipsDstNAT), v(gotoLimit)),
			r("whitelisted destinations (v4)", daddrIn(v4, setAllow4), v(accept)),
			r("whitelisted destinations (v6)", daddrIn(v6, setAllow6), v(accept)),
			r("everything else", v(drop)),
		},
	}
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func nfproto(fam byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam}},
	}
}

// addr loads the source or destination address of an IPv4 or IPv6 header
// into register 1; an nfproto match must come first in an inet table.
func addr(fam byte, src bool) expr.Any {
	off, n := uint32(16), uint32(4)
	if src {
		off = 12
	}
	if fam == unix.NFPROTO_IPV6 {
		off, n = 24, 16
		if src {
			off = 8
		}
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

func lookup(set string) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: set}
}

func ctState(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func ctStatus(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func ifIndex(key expr.MetaKey, idx uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(idx)},
	}
}

func l4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

func dport() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func tcpDport(set string) []expr.Any {
	return append(l4proto(unix.IPPROTO_TCP), dport(), lookup(set))
}

func udpDport(port uint16) []expr.Any {
	return append(l4proto(unix.IPPROTO_UDP), dport(),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)})
}

func icmp6Types(lo, hi byte) []expr.Any {
	return append(l4proto(unix.IPPROTO_ICMPV6),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{lo}},
		&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{hi}})
}

// meter is "update @meterN { saddr limit rate over R/second burst B }": a
// token bucket per source, created by the kernel on the source's first new
// connection and refreshed on each one.
func (f *Firewall) meter(set string) expr.Any {
	return &expr.Dynset{
		SrcRegKey: 1,
		SetName:   set,
		Operation: unix.NFT_DYNSET_OP_UPDATE,
		Timeout:   meterTimeout,
		Exprs: []expr.Any{&expr.Limit{
			Type: expr.LimitTypePkts, Rate: uint64(f.opt.RatePerSecond), Unit: expr.LimitTimeSecond,
			Burst: f.opt.RateBurst, Over: true,
		}},
	}
}

// inspection is the table as the kernel has it.
type inspection struct {
	table  bool
	sets   map[string]*nftables.Set
	chains map[string]*nftables.Chain
	rules  map[string][]string // chain → rule comments in order
}

func (f *Firewall) inspect() (inspection, error) {
	in := inspection{sets: map[string]*nftables.Set{}, chains: map[string]*nftables.Chain{}, rules: map[string][]string{}}
	ok, err := f.tableExists()
	if err != nil || !ok {
		return in, err
	}
	in.table = true
	sets, err := f.conn.GetSets(f.table)
	if err != nil {
		return in, fmt.Errorf("firewall: list sets of %s: %w", f.opt.Table, err)
	}
	for _, s := range sets {
		in.sets[s.Name] = s
	}
	chains, err := f.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return in, fmt.Errorf("firewall: list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != f.opt.Table {
			continue
		}
		in.chains[c.Name] = c
		rules, err := f.conn.GetRules(f.table, c)
		if err != nil {
			return in, fmt.Errorf("firewall: list rules of chain %s: %w", c.Name, err)
		}
		comments := make([]string, 0, len(rules))
		for _, r := range rules {
			s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			comments = append(comments, s)
		}
		in.rules[c.Name] = comments
	}
	return in, nil
}

// diff lists what is wrong with the table; empty means whole.
func (f *Firewall) diff(in inspection) []string {
	if !in.table {
		return []string{"table missing"}
	}
	var out []string
	want := map[string]bool{}
	for _, s := range setSpecs() {
		want[s.name] = true
		switch k := in.sets[s.name]; {
		case k == nil:
			out = append(out, "set "+s.name+" missing")
		case !s.matches(k):
			out = append(out, "set "+s.name+" differs")
		}
	}
	for name := range in.sets {
		if !want[name] {
			out = append(out, "unknown set "+name)
		}
	}
	rules := f.rules()
	wantChain := map[string]bool{}
	for _, c := range chainSpecs {
		wantChain[c.name] = true
		k := in.chains[c.name]
		switch {
		case k == nil:
			out = append(out, "chain "+c.name+" missing")
			continue
		case !c.matches(k):
			out = append(out, "chain "+c.name+" differs")
		}
		var comments []string
		for _, r := range rules[c.name] {
			comments = append(comments, r.comment)
		}
		if !slices.Equal(comments, in.rules[c.name]) {
			out = append(out, "rules of chain "+c.name+" differ")
		}
	}
	for name := range in.chains {
		if !wantChain[name] {
			out = append(out, "unknown chain "+name)
		}
	}
	slices.Sort(out)
	return out
}

// ensure makes the table whole in one batch and says whether it changed
// anything. Elements of sets that are right survive a repair; a set of the
// wrong shape is made again (its elements are lost; the engine re-asserts).
func (f *Firewall) ensure() (bool, error) {
	in, err := f.inspect()
	if err != nil {
		return false, err
	}
	problems := f.diff(in)
	if len(problems) == 0 {
		return false, nil
	}
	if in.table {
		f.log.Warn("firewall: repairing table", "table", f.opt.Table, "problems", problems)
		f.conn.FlushTable(f.table) // all rules: sets and chains lose their users
	} else {
		f.log.Info("firewall: creating table", "table", f.opt.Table)
		f.conn.AddTable(f.table)
	}
	chainOK := map[string]bool{}
	for _, c := range chainSpecs {
		if k := in.chains[c.name]; k != nil && c.matches(k) {
			chainOK[c.name] = true
		}
	}
	for name := range in.chains {
		if !chainOK[name] {
			f.conn.DelChain(&nftables.Chain{Name: name, Table: f.table})
		}
	}
	specs := map[string]setSpec{}
	for _, s := range setSpecs() {
		specs[s.name] = s
	}
	for name, k := range in.sets {
		if s, ok := specs[name]; !ok || !s.matches(k) {
			f.conn.DelSet(&nftables.Set{Name: name, Table: f.table})
		}
	}
	for _, s := range setSpecs() {
		if k := in.sets[s.name]; k != nil && s.matches(k) {
			continue
		}
		if err := f.conn.AddSet(s.set(f.table), nil); err != nil {
			return false, fmt.Errorf("firewall: add set %s: %w", s.name, err)
		}
	}
	chains := map[string]*nftables.Chain{}
	for _, c := range chainSpecs {
		chains[c.name] = c.chain(f.table)
		if !chainOK[c.name] {
			f.conn.AddChain(chains[c.name])
		}
	}
	rules := f.rules()
	for _, c := range chainSpecs {
		for _, r := range rules[c.name] {
			f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: chains[c.name], Exprs: r.exprs, UserData: comment(r.comment)})
		}
	}
	if err := f.conn.Flush(); err != nil {
		return false, fmt.Errorf("firewall: ensure table %s: %w", f.opt.Table, err)
	}
	return true, nil
}
