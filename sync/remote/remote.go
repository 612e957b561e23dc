// Package remote is the agent's git transport to its config repository: a
// local bare clone inside the state directory, fetched from and pushed to an
// "origin" remote with go-git.
//
// Transports: file:// URLs and plain local paths (these run the git binary's
// git-upload-pack/git-receive-pack, as go-git's file transport does);
// ssh:// and scp-like user@host:path with a private key file and a
// mandatory known_hosts file (no trust on first use); http:// and https://
// with a token or user:password, through go-retryablehttp (see
// NewHTTPClient and InstallHTTP).
//
// Memory stays bounded on a long history: objects are stored on disk
// (filesystem storage with a small object cache and a large-object
// threshold), fetches are incremental (the local heads are sent as "haves")
// and never shallow — a shallow clone makes later fetches and fast-forward
// checks fail with "object not found".
//
// Every failure of Fetch and Push is an *Error that says whether it is
// temporary; errors.Is matches ErrNonFastForward, ErrAuth, ErrHostKey,
// ErrNotFound and ErrBranchNotFound.
//
// Concurrency: go-git repositories are not safe for concurrent use. A Remote
// serialises its own Fetch and Push calls, but it has a single owner
// goroutine in mind: whoever uses Repo() must not do so while a Fetch or Push
// runs in another goroutine.
package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// RemoteName is the name of the remote in the local repository.
const RemoteName = "origin"

// Config configures a Remote.
type Config struct {
	// URL of the config repository: file:///srv/config.git, /srv/config.git,
	// ssh://git@host:22/org/config.git, git@host:org/config.git,
	// https://host/org/config.git.
	URL string
	// Branch is the config branch; default "main".
	Branch string
	// Dir is the local bare clone, inside the state directory (e.g.
	// <state>/repo). Created if missing or empty.
	Dir string
	// Credentials is a path. ssh: the private key file (unencrypted; an
	// encrypted key is refused). http(s): a file holding a token (sent as
	// the basic-auth password of user Username, default "x-access-token")
	// or "user:password". Empty: anonymous. Read at every operation, so a
	// rotated credential takes effect without restart.
	Credentials string
	// Username is the basic-auth user sent with a token; default
	// "x-access-token" (GitHub; GitLab accepts any user with a token).
	Username string
	// KnownHosts is the known_hosts file the SSH host key must be in.
	// Required for ssh: there is no trust on first use.
	KnownHosts string
	// HTTPClient overrides the HTTP client of this remote. It is used as
	// is: build it with NewHTTPClient to keep retries. Default
	// NewHTTPClient(Retry, Logger).
	HTTPClient *http.Client
	// Retry configures the default HTTP client (ignored with HTTPClient).
	Retry RetryPolicy
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Remote is the local clone plus its origin. See the package doc for the
// concurrency rule.
type Remote struct {
	cfg   Config
	repo  *git.Repository
	log   *slog.Logger
	ep    *transport.Endpoint
	kind  string // "file", "ssh", "http"
	httpT transport.Transport

	mu sync.Mutex
}

// Object cache of the local repository: enough for verification walks,
// small enough that a long history does not grow the heap.
const (
	objectCacheSize      = 16 * cache.MiByte
	largeObjectThreshold = 1 << 20
	// maxOpenPacks keeps pack files open between object reads: go-git
	// otherwise reopens the pack for every object, which was half of a sync
	// cycle's CPU (open/lstat) on a 5,000-commit repository. The Remote
	// lives as long as the agent, so the descriptors do too.
	maxOpenPacks = 16
)

// Open opens the local repository at cfg.Dir, initialising a bare one if the
// directory is missing or empty, and makes sure its "origin" remote points at
// cfg.URL (updating it when the URL changed). It checks the configuration of
// the transport (credentials file readable, known_hosts present for ssh)
// but does not contact the remote.
func Open(cfg Config) (*Remote, error) {
	if cfg.URL == "" {
		return nil, errors.New("remote: no URL configured")
	}
	if cfg.Dir == "" {
		return nil, errors.New("remote: no local directory configured")
	}
	if cfg.Branch == "" {
		cfg.Branch = "main"
	}
	cfg.Branch = strings.TrimPrefix(cfg.Branch, "refs/heads/")
	if err := plumbing.NewBranchReferenceName(cfg.Branch).Validate(); err != nil {
		return nil, fmt.Errorf("remote: branch %q: %w", cfg.Branch, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ep, err := transport.NewEndpoint(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("remote: URL %q: %w", redact(cfg.URL), err)
	}
	r := &Remote{cfg: cfg, log: cfg.Logger, ep: ep}
	switch ep.Protocol {
	case "file":
		r.kind = "file"
	case "ssh":
		r.kind = "ssh"
	case "http", "https":
		r.kind = "http"
		installDispatcher()
		c := cfg.HTTPClient
		if c == nil {
			c = NewHTTPClient(cfg.Retry, cfg.Logger)
		}
		r.httpT = githttp.NewClient(c)
	default:
		return nil, fmt.Errorf("remote: URL %q: unsupported scheme %q (use file, ssh, http or https)", redact(cfg.URL), ep.Protocol)
	}
	if _, err := r.auth(); err != nil {
		return nil, err
	}

	repo, err := openOrInit(cfg.Dir, cfg.Branch)
	if err != nil {
		return nil, err
	}
	r.repo = repo
	if err := r.ensureOrigin(); err != nil {
		return nil, err
	}
	return r, nil
}

func openOrInit(dir, branch string) (*git.Repository, error) {
	fresh := false
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if !os.IsNotExist(err) {
			return nil, fmt.Errorf("remote: %w", err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("remote: %w", err)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("remote: %s exists and is not a git repository", dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("remote: %w", err)
		}
		fresh = true
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRU(objectCacheSize),
		filesystem.Options{LargeObjectThreshold: largeObjectThreshold, MaxOpenDescriptors: maxOpenPacks})
	if fresh {
		repo, err := git.InitWithOptions(st, nil, git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)})
		if err != nil {
			return nil, fmt.Errorf("remote: init %s: %w", dir, err)
		}
		return repo, nil
	}
	repo, err := git.Open(st, nil)
	if err != nil {
		return nil, fmt.Errorf("remote: open %s: %w", dir, err)
	}
	return repo, nil
}

func (r *Remote) ensureOrigin() error {
	want := config.RefSpec("+refs/heads/*:refs/remotes/" + RemoteName + "/*")
	c, err := r.repo.Config()
	if err != nil {
		return fmt.Errorf("remote: read config: %w", err)
	}
	rc, ok := c.Remotes[RemoteName]
	if ok && len(rc.URLs) == 1 && rc.URLs[0] == r.cfg.URL && len(rc.Fetch) == 1 && rc.Fetch[0] == want {
		return nil
	}
	if ok && (len(rc.URLs) != 1 || rc.URLs[0] != r.cfg.URL) {
		old := ""
		if len(rc.URLs) > 0 {
			old = redact(rc.URLs[0])
		}
		r.log.Info("config repository URL changed", "old", old, "new", redact(r.cfg.URL))
	}
	c.Remotes[RemoteName] = &config.RemoteConfig{Name: RemoteName, URLs: []string{r.cfg.URL}, Fetch: []config.RefSpec{want}}
	if err := r.repo.SetConfig(c); err != nil {
		return fmt.Errorf("remote: write config: %w", err)
	}
	return nil
}

// Repo returns the local repository for verification and commits. Not safe
// for use concurrently with Fetch or Push (go-git is not safe for concurrent
// use).
func (r *Remote) Repo() *git.Repository { return r.repo }

// Branch returns the configured main branch name.
func (r *Remote) Branch() string { return r.cfg.Branch }

// TrackingRef returns the remote-tracking reference Fetch updates for
// branch: refs/remotes/origin/<branch>.
func TrackingRef(branch string) plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(RemoteName, strings.TrimPrefix(branch, "refs/heads/"))
}

// Fetch fetches the main branch and the extra branches given (short names
// such as "hosts/web1", or refs/heads/...) into refs/remotes/origin/<name>
// and returns their heads keyed by short name. An extra branch absent on the
// remote maps to the zero hash (and its stale remote-tracking ref, if any,
// is removed); a missing main branch is an error (ErrBranchNotFound).
// Remote-tracking refs are force-updated: checking that a new head descends
// from the last applied one is the caller's job.
func (r *Remote) Fetch(ctx context.Context, refs ...string) (map[string]plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	heads, err := r.fetch(ctx, refs)
	if err != nil {
		return nil, classify("fetch", err)
	}
	return heads, nil
}

func (r *Remote) fetch(ctx context.Context, extra []string) (map[string]plumbing.Hash, error) {
	names := []string{r.cfg.Branch}
	seen := map[string]bool{r.cfg.Branch: true}
	for _, n := range extra {
		n = strings.TrimPrefix(n, "refs/heads/")
		if err := plumbing.NewBranchReferenceName(n).Validate(); err != nil {
			return nil, fmt.Errorf("branch %q: %w", n, err)
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	auth, err := r.auth()
	if err != nil {
		return nil, err
	}
	rem, err := r.repo.Remote(RemoteName)
	if err != nil {
		return nil, err
	}

	want := names
	for attempt := 0; ; attempt++ {
		specs := make([]config.RefSpec, 0, len(want))
		for _, n := range want {
			specs = append(specs, config.RefSpec("+refs/heads/"+n+":"+TrackingRef(n).String()))
		}
		err = rem.FetchContext(ctx, &git.FetchOptions{
			RemoteName: RemoteName,
			RefSpecs:   specs,
			Auth:       auth,
			Tags:       git.NoTags,
			Force:      true,
		})
		if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
			break
		}
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return nil, fmt.Errorf("%w: %s (remote repository is empty)", ErrBranchNotFound, r.cfg.Branch)
		}
		if !errors.Is(err, git.NoMatchingRefSpecError{}) || attempt > 0 {
			return nil, err
		}
		// Some branch is missing: ask which, and fetch the others.
		list, lerr := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
		if lerr != nil {
			return nil, lerr
		}
		present := map[string]bool{}
		for _, ref := range list {
			if ref.Name().IsBranch() {
				present[ref.Name().Short()] = true
			}
		}
		if !present[r.cfg.Branch] {
			return nil, fmt.Errorf("%w: %s", ErrBranchNotFound, r.cfg.Branch)
		}
		want = want[:0:0]
		for _, n := range names {
			if present[n] {
				want = append(want, n)
			}
		}
	}

	heads := make(map[string]plumbing.Hash, len(names))
	wanted := map[string]bool{}
	for _, n := range want {
		wanted[n] = true
	}
	for _, n := range names {
		if !wanted[n] {
			heads[n] = plumbing.ZeroHash
			if err := r.repo.Storer.RemoveReference(TrackingRef(n)); err != nil {
				return nil, err
			}
			continue
		}
		ref, err := r.repo.Reference(TrackingRef(n), true)
		if err != nil {
			return nil, fmt.Errorf("after fetch, %s: %w", TrackingRef(n), err)
		}
		heads[n] = ref.Hash()
	}
	r.log.Debug("fetched", "remote", redact(r.cfg.URL), "heads", len(heads))
	return heads, nil
}

// Push pushes the local commit to refs/heads/<remoteBranch> on the remote,
// without force: if the remote branch has commits the pushed one does not
// descend from, the error wraps ErrNonFastForward (fetch, rebase, push
// again). On success refs/remotes/origin/<remoteBranch> is set to local.
// Pushing what the remote already has is a no-op.
func (r *Remote) Push(ctx context.Context, local plumbing.Hash, remoteBranch string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return classify("push", r.push(ctx, local, remoteBranch))
}

func (r *Remote) push(ctx context.Context, local plumbing.Hash, remoteBranch string) error {
	remoteBranch = strings.TrimPrefix(remoteBranch, "refs/heads/")
	dst := plumbing.NewBranchReferenceName(remoteBranch)
	if err := dst.Validate(); err != nil {
		return fmt.Errorf("branch %q: %w", remoteBranch, err)
	}
	if local.IsZero() {
		return errors.New("push of the zero hash")
	}
	if _, err := r.repo.CommitObject(local); err != nil {
		return fmt.Errorf("commit %s: %w", local, err)
	}
	auth, err := r.auth()
	if err != nil {
		return err
	}
	rem, err := r.repo.Remote(RemoteName)
	if err != nil {
		return err
	}
	err = rem.PushContext(ctx, &git.PushOptions{
		RemoteName: RemoteName,
		RefSpecs:   []config.RefSpec{config.RefSpec(local.String() + ":" + dst.String())},
		Auth:       auth,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		return err
	}
	// go-git updates the tracking ref itself through the fetch refspec;
	// set it explicitly so the result does not depend on that.
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(TrackingRef(remoteBranch), local)); err != nil {
		return err
	}
	r.log.Debug("pushed", "remote", redact(r.cfg.URL), "branch", remoteBranch, "commit", local.String())
	return nil
}

// redact hides a password in a URL for logs and errors.
func redact(u string) string {
	ep, err := transport.NewEndpoint(u)
	if err != nil || ep.Password == "" {
		return u
	}
	ep.Password = "xxxxx"
	return ep.String()
}
