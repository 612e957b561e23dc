// Package treefs exposes a git tree (go-git) as an io/fs.FS, so the schema
// loader reads a verified commit of the config repository exactly as it
// reads a directory: no checkout, no worktree, nothing an attacker could
// swap between verification and loading. The config sync uses it.
package treefs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// MaxFile bounds the size of a file read from the tree: config files are
// small, and a hostile commit must not make the agent allocate gigabytes.
const MaxFile = 4 << 20

// FS is a read-only view of one tree.
type FS struct {
	root *object.Tree
	when time.Time
}

// New returns the file system of tree; when is the commit time, reported as
// every file's modification time.
func New(tree *object.Tree, when time.Time) *FS { return &FS{root: tree, when: when} }

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &dir{fsys: f, name: ".", tree: f.root}, nil
	}
	entry, err := f.root.FindEntry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	switch entry.Mode {
	case filemode.Dir:
		t, err := f.root.Tree(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dir{fsys: f, name: name, tree: t}, nil
	case filemode.Regular, filemode.Executable:
		file, err := f.root.File(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		if file.Size > MaxFile {
			return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("file too large for a config file")}
		}
		rc, err := file.Reader()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &regular{info: info{name: path.Base(name), size: file.Size, mode: 0o444, when: f.when}, rc: rc}, nil
	default:
		// Symlinks and submodules are not followed: a config repository
		// has no use for them and following them could leave the tree.
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file or directory (symlinks and submodules are not followed)")}
	}
}

type info struct {
	name string
	size int64
	mode fs.FileMode
	when time.Time
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return i.size }
func (i info) Mode() fs.FileMode  { return i.mode }
func (i info) ModTime() time.Time { return i.when }
func (i info) IsDir() bool        { return i.mode.IsDir() }
func (i info) Sys() any           { return nil }

type regular struct {
	info info
	rc   io.ReadCloser
}

func (r *regular) Stat() (fs.FileInfo, error) { return r.info, nil }
func (r *regular) Read(b []byte) (int, error) { return r.rc.Read(b) }
func (r *regular) Close() error               { return r.rc.Close() }

type dir struct {
	fsys *FS
	name string
	tree *object.Tree
	read int
}

func (d *dir) Stat() (fs.FileInfo, error) {
	return info{name: path.Base(d.name), mode: fs.ModeDir | 0o555, when: d.fsys.when}, nil
}
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *dir) Close() error { return nil }

// ReadDir implements fs.ReadDirFile, in name order.
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	entries := append([]object.TreeEntry(nil), d.tree.Entries...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	var out []fs.DirEntry
	for _, e := range entries[d.read:] {
		if n > 0 && len(out) == n {
			break
		}
		mode := fs.FileMode(0o444)
		var size int64
		switch e.Mode {
		case filemode.Dir:
			mode = fs.ModeDir | 0o555
		case filemode.Regular, filemode.Executable:
			if f, err := d.tree.TreeEntryFile(&e); err == nil {
				size = f.Size
			}
		default:
			mode = fs.ModeIrregular
		}
		out = append(out, fs.FileInfoToDirEntry(info{name: e.Name, size: size, mode: mode, when: d.fsys.when}))
	}
	d.read += len(out)
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}
