package hostbranch

import (
	"fmt"
	"io"
	"sort"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Building trees and objects directly in the object store (no worktree).

// fileEdit computes a file's new content from its current one.
type fileEdit func(old []byte, exists bool) ([]byte, error)

// editTree returns the hash of tree base (zero: empty) with edits applied,
// keyed by slash-separated path. Only the trees on edited paths are
// rewritten; unchanged subtrees keep their hashes, so the result is
// deterministic and equal to base when nothing changed.
func editTree(repo *git.Repository, base plumbing.Hash, edits map[string]fileEdit) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if !base.IsZero() {
		t, err := repo.TreeObject(base)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read tree %s: %w", short(base), err)
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	files := map[string]fileEdit{}
	dirs := map[string]map[string]fileEdit{}
	for p, fe := range edits {
		name, rest, isDir := strings.Cut(p, "/")
		if name == "" || name == "." || name == ".." || name == ".git" {
			return plumbing.ZeroHash, fmt.Errorf("invalid path %q", p)
		}
		if isDir {
			if dirs[name] == nil {
				dirs[name] = map[string]fileEdit{}
			}
			dirs[name][rest] = fe
		} else {
			files[name] = fe
		}
	}
	for name, fe := range files {
		old, exists := entries[name]
		if exists && !old.Mode.IsFile() {
			return plumbing.ZeroHash, fmt.Errorf("%s exists and is not a file", name)
		}
		var oldData []byte
		if exists {
			var err error
			if oldData, err = readBlob(repo, old.Hash); err != nil {
				return plumbing.ZeroHash, fmt.Errorf("%s: %w", name, err)
			}
		}
		data, err := fe(oldData, exists)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: %w", name, err)
		}
		h, err := writeObject(repo, plumbing.BlobObject, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h}
	}
	for name, sub := range dirs {
		old, exists := entries[name]
		var subBase plumbing.Hash
		if exists {
			if old.Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s exists and is not a directory", name)
			}
			subBase = old.Hash
		}
		h, err := editTree(repo, subBase, sub)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s/%w", name, err)
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	t := &object.Tree{Entries: make([]object.TreeEntry, 0, len(entries))}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	sort.Sort(object.TreeEntrySorter(t.Entries))
	obj := repo.Storer.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store tree: %w", err)
	}
	return h, nil
}

func writeObject(repo *git.Repository, typ plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(typ)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store %s: %w", typ, err)
	}
	return h, nil
}

func readBlob(repo *git.Repository, h plumbing.Hash) ([]byte, error) {
	b, err := repo.BlobObject(h)
	if err != nil {
		return nil, err
	}
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
