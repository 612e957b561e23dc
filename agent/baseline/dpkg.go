package baseline

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// PackageCheck tells a package update apart from any other change of a
// system file. Declared here, where the file_changed rule consumes it.
type PackageCheck interface {
	// Explains reports whether the package manager explains the current
	// content of path (a host path), and how ("matches dpkg's md5sums of
	// coreutils", "dpkg is running").
	Explains(path string) (bool, string)
}

// Dpkg checks a changed file against dpkg's database: a file whose
// content matches the md5sum its package lists was put there by the
// package manager, and while dpkg, apt or unattended-upgrade runs every
// change is presumed theirs. It keeps no index (the md5sums of a Debian
// host are ~100,000 lines, megabytes the agent would carry for a rule
// that fires rarely): each check reads *.md5sums until it finds the path,
// after the cheaper "is a package manager running" look at /proc.
type Dpkg struct {
	// Root is dpkg's database (/var/lib/dpkg); HostRoot prefixes the
	// paths of changed files and of /proc ("" is /).
	Root, HostRoot string
	// maxSize bounds the bytes hashed per check.
	maxSize int64
}

// NewDpkg returns a check reading dpkg's database under root.
func NewDpkg(root, hostRoot string) *Dpkg {
	return &Dpkg{Root: root, HostRoot: hostRoot, maxSize: 256 << 20}
}

// packageManagers are the comm names (15 characters at most) of processes
// that change system files on purpose.
var packageManagers = map[string]bool{"dpkg": true, "apt": true, "apt-get": true, "aptitude": true,
	"unattended-upgr": true, "unattended-upgrade": true, "dpkg-deb": true, "packagekitd": true}

// Explains implements PackageCheck.
func (d *Dpkg) Explains(path string) (bool, string) {
	if name := d.running(); name != "" {
		return true, name + " is running"
	}
	sum, err := d.md5(path)
	if err != nil {
		return false, ""
	}
	pkg, ok := d.listed(path, sum)
	if !ok {
		return false, ""
	}
	return true, "content matches dpkg's md5sums of " + pkg
}

// running returns the name of a running package manager, "" if none.
func (d *Dpkg) running() string {
	proc := filepath.Join(d.root(), "proc")
	ents, err := os.ReadDir(proc)
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err != nil {
			continue
		}
		if name := strings.TrimSpace(string(b)); packageManagers[name] {
			return name
		}
	}
	return ""
}

func (d *Dpkg) root() string {
	if d.HostRoot == "" {
		return "/"
	}
	return d.HostRoot
}

func (d *Dpkg) md5(path string) (string, error) {
	f, err := os.Open(filepath.Join(d.root(), path))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(f, d.maxSize+1))
	if err != nil {
		return "", err
	}
	if n > d.maxSize {
		return "", fmt.Errorf("baseline: %s larger than %d bytes", path, d.maxSize)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// listed reports the package whose md5sums list path with sum. dpkg
// writes paths without the leading slash; merged-/usr hosts list /bin/x
// as bin/x or usr/bin/x depending on the package, so both are tried.
func (d *Dpkg) listed(path, sum string) (string, bool) {
	rel := strings.TrimPrefix(path, "/")
	needles := [][]byte{[]byte(sum + "  " + rel + "\n")}
	if alt, ok := strings.CutPrefix(rel, "usr/"); ok {
		needles = append(needles, []byte(sum+"  "+alt+"\n"))
	} else {
		needles = append(needles, []byte(sum+"  usr/"+rel+"\n"))
	}
	files, _ := filepath.Glob(filepath.Join(d.Root, "info", "*.md5sums"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, n := range needles {
			if bytes.HasPrefix(b, n) || bytes.Contains(b, append([]byte{'\n'}, n...)) {
				name := strings.TrimSuffix(filepath.Base(f), ".md5sums")
				name, _, _ = strings.Cut(name, ":") // libc6:amd64
				return name, true
			}
		}
	}
	return "", false
}
