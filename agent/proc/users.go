package proc

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// usersRecheck bounds how often the passwd file's mtime is checked: a stat
// per exec would be a syscall per event for a file that changes rarely.
const usersRecheck = time.Second

// maxUsers caps the cache so a hostile or enormous passwd file cannot grow
// the agent without bound.
const maxUsers = 65536

// Users resolves uids to account names from a passwd file, cached and
// re-read when the file's mtime or size changes. Without cgo there is no
// NSS: accounts that exist only in LDAP/SSSD stay unresolved (empty name).
type Users struct {
	path string

	mu      sync.Mutex
	names   map[int]string
	mtime   time.Time
	size    int64
	checked time.Time
}

// NewUsers returns a cache over passwdPath ("/etc/passwd" when empty; tests
// point it into testdata).
func NewUsers(passwdPath string) *Users {
	if passwdPath == "" {
		passwdPath = "/etc/passwd"
	}
	return &Users{path: passwdPath}
}

// Name returns the account name of uid, or "" when unknown.
func (u *Users) Name(uid int) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if u.names == nil || now.Sub(u.checked) >= usersRecheck {
		u.checked = now
		u.refresh()
	}
	return u.names[uid]
}

func (u *Users) refresh() {
	fi, err := os.Stat(u.path)
	if err != nil {
		if u.names == nil {
			u.names = map[int]string{}
		}
		return
	}
	if u.names != nil && fi.ModTime().Equal(u.mtime) && fi.Size() == u.size {
		return
	}
	data, err := os.ReadFile(u.path)
	if err != nil {
		if u.names == nil {
			u.names = map[int]string{}
		}
		return
	}
	u.names, u.mtime, u.size = parsePasswd(data), fi.ModTime(), fi.Size()
}

// parsePasswd maps uid to the first name listed for it, as getpwuid does.
func parsePasswd(data []byte) map[int]string {
	names := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() && len(names) < maxUsers {
		f := bytes.SplitN(sc.Bytes(), []byte{':'}, 4)
		if len(f) < 4 || len(f[0]) == 0 || f[0][0] == '#' || f[0][0] == '+' || f[0][0] == '-' {
			continue
		}
		uid, err := strconv.Atoi(string(f[2]))
		if err != nil || uid < 0 {
			continue
		}
		if _, dup := names[uid]; !dup {
			names[uid] = string(f[0])
		}
	}
	return names
}
