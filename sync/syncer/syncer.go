// Package syncer is the agent's side of the config repository: one cycle
// fetches the config branch, verifies every new commit's signature against
// the local trust root (sync/trust), validates the policy at the new head
// (schema, read straight from the git tree), hands it to the running agent,
// and pushes the host's own history (audit entries, status, signed
// checkpoints) to hosts/<hostname> as signed commits. Anything it must
// write is durable in the state database first (the audit table is the
// outbox, read by a cursor), so an unreachable remote only delays it.
// `picket run` runs Run in its own goroutine; `picket sync --once` calls
// Once. The Syncer owns its git repository: go-git is not safe for
// concurrent use, so nothing else touches it while it runs.
package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/hostkey"
	"github.com/picket-agent/picket/sync/remote"
	"github.com/picket-agent/picket/sync/treefs"
	"github.com/picket-agent/picket/sync/trust"
)

// ApplyFunc swaps the running configuration. It is called from the
// Syncer's goroutine and must return once the policy is in force (or
// refused). The revision and signer are for the caller's status.
type ApplyFunc func(ctx context.Context, p *schema.Policy, revision, signer string) error

// Config wires a Syncer.
type Config struct {
	Hostname  string
	Bootstrap schema.Bootstrap
	StateDir  string
	Store     *state.Store
	Apply     ApplyFunc
	// AppliedNote, when set, is asked after a successful Apply what the
	// config.applied entry should add (the agent: "restart needed for:
	// sensors.auth" when the config changes what sensors read at start).
	AppliedNote func() string
	Logger      *slog.Logger
	Version     string
	// StatusJSON returns the agent's status.json for the host branch
	// (nil: none).
	StatusJSON func() []byte
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Syncer runs sync cycles.
type Syncer struct {
	cfg    Config
	log    *slog.Logger
	remote *remote.Remote
	key    *hostkey.Key
	status Status
	// baselineCommitted is the baseline version in the local commits not
	// yet confirmed pushed.
	baselineCommitted int
}

// ErrNoRepository is returned when the bootstrap names no repository.
var ErrNoRepository = errors.New("sync: no repository configured (repository.url in the bootstrap file)")

// New opens the local clone and the host key (creating it on first start).
func New(cfg Config) (*Syncer, error) {
	b := cfg.Bootstrap
	if b.Repository.URL == "" {
		return nil, ErrNoRepository
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.With(slog.String("subsystem", "sync"))
	key, created, err := hostkey.LoadOrCreate(b.Repository.HostKey)
	if err != nil {
		return nil, fmt.Errorf("sync: host key: %w", err)
	}
	if created {
		log.Info("host key created", "path", b.Repository.HostKey, "fingerprint", key.Fingerprint())
	}
	// No credentials file means anonymous access (a public HTTPS remote, a
	// local path): the default path is used by every install, whether or
	// not the repository needs it.
	creds := b.Credentials
	if _, err := os.Stat(creds); errors.Is(err, fs.ErrNotExist) {
		log.Info("no credentials file; accessing the repository anonymously", "path", creds)
		creds = ""
	}
	r, err := remote.Open(remote.Config{URL: b.Repository.URL, Branch: b.Repository.Branch,
		Dir: filepath.Join(cfg.StateDir, "repo"), Credentials: creds, KnownHosts: b.Repository.KnownHosts, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	s := &Syncer{cfg: cfg, log: log, remote: r, key: key}
	if _, err := cfg.Store.MetaJSON(context.Background(), MetaSync, &s.status); err != nil {
		return nil, err
	}
	s.status.Remote, s.status.Branch = b.Repository.URL, b.Repository.Branch
	s.status.HostBranch = "hosts/" + cfg.Hostname
	return s, nil
}

// Run runs a cycle every interval until ctx ends; kick makes it run one at
// once (SIGHUP). Errors of a cycle are recorded in status, never fatal.
func (s *Syncer) Run(ctx context.Context, kick <-chan struct{}) error {
	iv := s.cfg.Bootstrap.Repository.Interval.D()
	if iv <= 0 {
		iv = time.Minute
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-kick:
		}
		if _, err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sync cycle incomplete", "err", err)
		}
		t.Reset(iv)
	}
}

// Report says what one cycle did.
type Report struct {
	Fetched   bool
	Applied   string // revision applied in this cycle
	Rejected  *Rejection
	Pushed    int // audit entries pushed
	PushError error
}

// ErrRejected is returned by Once when the remote config was refused.
var ErrRejected = errors.New("sync: remote config rejected")

// Once runs fetch → verify → validate → apply → push. The error is nil
// when the config in force is the remote's head (or was applied) and the
// push succeeded.
func (s *Syncer) Once(ctx context.Context) (Report, error) {
	var rep Report
	defer s.saveStatus()
	head, err := s.fetch(ctx)
	if err != nil {
		s.offline(err)
		return rep, err
	}
	rep.Fetched = true
	if rej, rev, err := s.config(ctx, head); err != nil {
		return rep, err
	} else if rej != nil {
		rep.Rejected = rej
	} else {
		rep.Applied = rev
	}
	n, err := s.push(ctx)
	rep.Pushed = n
	if err != nil {
		rep.PushError = err
		s.offline(err)
		return rep, err
	}
	if err := s.syncProposals(ctx, head); err != nil {
		rep.PushError = err
		s.offline(err)
		return rep, err
	}
	s.status.OfflineSince = time.Time{}
	if rep.Rejected != nil {
		return rep, fmt.Errorf("%w: %s", ErrRejected, rep.Rejected.Reason)
	}
	return rep, nil
}

func (s *Syncer) offline(err error) {
	if s.status.OfflineSince.IsZero() {
		s.status.OfflineSince = s.cfg.Now()
	}
	s.log.Warn("remote unreachable or refusing", "err", err)
}

func (s *Syncer) fetch(ctx context.Context) (plumbing.Hash, error) {
	b := s.cfg.Bootstrap.Repository.Branch
	heads, err := s.remote.Fetch(ctx, s.status.HostBranch)
	now := s.cfg.Now()
	if err != nil {
		s.status.LastFetchError = err.Error()
		return plumbing.ZeroHash, fmt.Errorf("sync: fetch: %w", err)
	}
	s.status.LastFetch, s.status.LastFetchError = now, ""
	return heads[b], nil
}

// config verifies and applies head if it is new. A rejection is returned
// (and audited once per revision and reason), not an error.
func (s *Syncer) config(ctx context.Context, head plumbing.Hash) (*Rejection, string, error) {
	rev := head.String()
	if rev == s.status.AppliedRevision {
		return nil, "", nil
	}
	local, err := trust.LoadDir(s.cfg.Bootstrap.TrustDir)
	if err != nil {
		return s.reject(ctx, rev, "trust-root", fmt.Sprintf("local trust root %s unreadable: %v", s.cfg.Bootstrap.TrustDir, err)), "", nil
	}
	var from plumbing.Hash
	if s.status.AppliedRevision != "" {
		from = plumbing.NewHash(s.status.AppliedRevision)
	}
	mode, err := trust.ParseMode(s.cfg.Bootstrap.Repository.Verify)
	if err != nil {
		return nil, "", fmt.Errorf("sync: %w", err)
	}
	res, err := trust.Verify(s.remote.Repo(), trust.Request{From: from, To: head, Mode: mode,
		Local: local, Cache: &cache{st: s.cfg.Store}})
	var tr *trust.Rejection
	if errors.As(err, &tr) {
		return s.reject(ctx, rev, tr.Kind.String(), tr.Error()), "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("sync: verify %s: %w", short(rev), err)
	}
	commit, err := s.remote.Repo().CommitObject(head)
	if err != nil {
		return nil, "", fmt.Errorf("sync: read %s: %w", short(rev), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("sync: read tree of %s: %w", short(rev), err)
	}
	pol, err := schema.LoadFS(treefs.New(tree, commit.Committer.When), s.cfg.Hostname)
	if err != nil {
		return s.reject(ctx, rev, "invalid", fmt.Sprintf("config %s is signed but invalid:\n%v", short(rev), err)), "", nil
	}
	signer := res.Signer.String()
	if err := s.cfg.Apply(ctx, pol, rev, signer); err != nil {
		return s.reject(ctx, rev, "apply", fmt.Sprintf("config %s could not be applied: %v", short(rev), err)), "", nil
	}
	now := s.cfg.Now()
	pj, _ := json.Marshal(pol)
	applied := Applied{Revision: rev, Signer: signer, At: now, Policy: pj}
	err = s.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaApplied, applied); err != nil {
			return err
		}
		data, _ := json.Marshal(map[string]any{"revision": rev, "signer": res.Signer, "verified_commits": res.Verified, "cached": res.Cached})
		msg := fmt.Sprintf("config %s applied, signed by %s (%d new commit(s) verified, mode %s)", short(rev), signer, res.Verified, s.cfg.Bootstrap.Repository.Verify)
		if s.cfg.AppliedNote != nil {
			if note := s.cfg.AppliedNote(); note != "" {
				msg += "; " + note
			}
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindConfigApplied, Subject: "config:" + rev,
			Message: msg, Data: data})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	s.status.AppliedRevision, s.status.AppliedSigner, s.status.AppliedAt = rev, signer, now
	s.status.LastRejection = nil
	s.log.Info("config applied", "revision", rev, "signer", signer)
	return nil, rev, nil
}

// reject records a refused config: the previous one stays in force.
func (s *Syncer) reject(ctx context.Context, rev, kind, reason string) *Rejection {
	now := s.cfg.Now()
	rej := &Rejection{Revision: rev, Kind: kind, Reason: reason, At: now}
	prev := s.status.LastRejection
	s.status.LastRejection = rej
	if prev != nil && prev.Revision == rev && prev.Reason == reason {
		return rej // audited already; the remote has not moved
	}
	s.log.Error("config rejected; the previous config stays in force", "revision", rev, "kind", kind, "reason", reason)
	err := s.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		data, _ := json.Marshal(rej)
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindConfigRejected, Subject: "config:" + rev,
			Message: fmt.Sprintf("config %s rejected (%s), the previous config stays in force: %s", short(rev), kind, reason), Data: data})
		return err
	})
	if err != nil {
		s.log.Error("recording rejection failed", "err", err)
	}
	return rej
}

func (s *Syncer) saveStatus() {
	if n, err := s.cfg.Store.AuditCount(context.Background()); err == nil {
		s.status.Queued = n - s.status.PushedSeq
	}
	err := s.cfg.Store.Update(context.Background(), func(tx *state.Tx) error {
		return tx.SetMetaJSON(context.Background(), MetaSync, s.status)
	})
	if err != nil {
		s.log.Error("saving sync status failed", "err", err)
	}
}

// Status returns the current sync status.
func (s *Syncer) Status() Status { return s.status }

// HostKey returns the host's signing key.
func (s *Syncer) HostKey() *hostkey.Key { return s.key }

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// cache keeps signature verifications in the state database, keyed by
// commit and trust-set hash.
type cache struct{ st *state.Store }

func (c *cache) Get(commit, trustHash string) (trust.Signer, bool) {
	raw, ok, err := c.st.Verified(context.Background(), commit, trustHash)
	if err != nil || !ok {
		return trust.Signer{}, false
	}
	var s trust.Signer
	if json.Unmarshal([]byte(raw), &s) != nil {
		return trust.Signer{}, false
	}
	return s, true
}

func (c *cache) Put(commit, trustHash string, s trust.Signer) {
	b, _ := json.Marshal(s)
	c.st.PutVerified(context.Background(), commit, trustHash, string(b))
}
