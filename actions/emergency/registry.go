// Package emergency keeps, in plain files beside the database, what the
// standalone emergency-stop script needs to undo picket's actions when the
// binary or the database is broken: the users picket disabled (with their
// previous expiry), whether it created /run/nologin (or what was there),
// and how to restore each isolated container. The action executors write
// it on apply and clear it on undo; the script (embedded here, installed as
// /usr/local/sbin/picket-emergency-stop) and `picket emergency-stop` read it.
//
// Layout under Dir (0700):
//
//	users                      "name<TAB>previous expire field" per line
//	nologin.created            present: picket created /run/nologin
//	nologin.saved              what /run/nologin held before picket
//	containers/<id>.pause      picket paused the container
//	containers/<id>.<n>.json   Docker API body to reconnect a network
//	containers/<id>.<n>.args   the same as `docker network connect` arguments
package emergency

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Script is the standalone emergency-stop shell script.
//
//go:embed picket-emergency-stop.sh
var Script []byte

// Registry is the plain-file record under Dir.
type Registry struct {
	Dir string
	mu  sync.Mutex
}

// DirIn returns the registry directory inside a state directory.
func DirIn(stateDir string) string { return filepath.Join(stateDir, "emergency") }

func (r *Registry) ensure() error {
	return os.MkdirAll(filepath.Join(r.Dir, "containers"), 0o700)
}

// AddUser records that user was disabled and what its expire field held.
func (r *Registry) AddUser(user, prevExpire string) error {
	if strings.ContainsAny(user, "\t\n") || strings.ContainsAny(prevExpire, "\t\n") {
		return fmt.Errorf("emergency: refusing user %q: control characters", user)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	users, err := r.users()
	if err != nil {
		return err
	}
	if _, ok := users[user]; ok {
		return nil // the first recorded value is the original one
	}
	users[user] = prevExpire
	return r.writeUsers(users)
}

// RemoveUser forgets user (it was enabled again).
func (r *Registry) RemoveUser(user string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	users, err := r.users()
	if err != nil {
		return err
	}
	if _, ok := users[user]; !ok {
		return nil
	}
	delete(users, user)
	return r.writeUsers(users)
}

// Users returns the disabled users and their previous expire fields.
func (r *Registry) Users() (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users()
}

func (r *Registry) users() (map[string]string, error) {
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(r.Dir, "users"))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("emergency: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		name, prev, _ := strings.Cut(line, "\t")
		out[name] = prev
	}
	return out, nil
}

func (r *Registry) writeUsers(users map[string]string) error {
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + "\t" + users[n] + "\n")
	}
	return r.write("users", []byte(b.String()))
}

// SetNologin records what /run/nologin was before picket wrote it.
func (r *Registry) SetNologin(existed bool, prev []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if existed {
		return r.write("nologin.saved", prev)
	}
	return r.write("nologin.created", nil)
}

// ClearNologin forgets the nologin record.
func (r *Registry) ClearNologin() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.remove("nologin.saved"), r.remove("nologin.created"))
}

// ContainerNetwork is how to reconnect one network of a container.
type ContainerNetwork struct {
	Network string // id or name
	Body    []byte // JSON body of POST /networks/{id}/connect
	Args    []string
}

// AddContainer records how to restore container id: paused, or the
// networks to reconnect.
func (r *Registry) AddContainer(id string, paused bool, nets []ContainerNetwork) error {
	if id == "" || strings.ContainsAny(id, "/.\n") {
		return fmt.Errorf("emergency: bad container id %q", id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if paused {
		return r.write(filepath.Join("containers", id+".pause"), nil)
	}
	for i, n := range nets {
		if err := r.write(filepath.Join("containers", fmt.Sprintf("%s.%d.json", id, i)), n.Body); err != nil {
			return err
		}
		args := append(append([]string(nil), n.Args...), n.Network, id)
		if err := r.write(filepath.Join("containers", fmt.Sprintf("%s.%d.args", id, i)), []byte(strings.Join(args, " ")+"\n")); err != nil {
			return err
		}
	}
	return nil
}

// RemoveContainer forgets container id.
func (r *Registry) RemoveContainer(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, _ := filepath.Glob(filepath.Join(r.Dir, "containers", id+".*"))
	var errs []error
	for _, f := range m {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Registry) write(name string, data []byte) error {
	if err := r.ensure(); err != nil {
		return fmt.Errorf("emergency: %w", err)
	}
	path := filepath.Join(r.Dir, name)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("emergency: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("emergency: write %s: %w", name, err)
	}
	return nil
}

func (r *Registry) remove(name string) error {
	err := os.Remove(filepath.Join(r.Dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("emergency: %w", err)
	}
	return nil
}
