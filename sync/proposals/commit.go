package proposals

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/picket-agent/picket/sync/hostbranch"
)

// Build writes ch as one commit on top of base, signed like the host
// branch's commits (an SSH signature by the host key over the commit
// without its gpgsig header), and returns its hash. Nothing is pushed.
func Build(repo *git.Repository, base plumbing.Hash, ch Change, msg string, who object.Signature, signer git.Signer) (plumbing.Hash, error) {
	if signer == nil {
		return plumbing.ZeroHash, errors.New("proposals: no signer (proposal commits must be signed)")
	}
	bc, err := repo.CommitObject(base)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("proposals: base %s: %w", base, err)
	}
	blob, err := writeObject(repo, plumbing.BlobObject, ch.Content)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree, err := putFile(repo, bc.TreeHash, strings.Split(path.Clean(ch.Path), "/"), blob)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("proposals: edit tree: %w", err)
	}
	if who.When.IsZero() {
		who.When = time.Now()
	}
	c := &object.Commit{Author: who, Committer: who, Message: msg, TreeHash: tree, ParentHashes: []plumbing.Hash{base}}
	h, err := hostbranch.SignAndStore(repo, c, signer)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("proposals: %w", err)
	}
	return h, nil
}

// putFile returns the hash of tree t with the file at parts set to blob,
// creating directories as needed.
func putFile(repo *git.Repository, t plumbing.Hash, parts []string, blob plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !t.IsZero() {
		tr, err := repo.TreeObject(t)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = append(entries, tr.Entries...)
	}
	name := parts[0]
	idx := -1
	for i, e := range entries {
		if e.Name == name {
			idx = i
		}
	}
	var ne object.TreeEntry
	if len(parts) == 1 {
		ne = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob}
	} else {
		var sub plumbing.Hash
		if idx >= 0 {
			if entries[idx].Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s is not a directory", name)
			}
			sub = entries[idx].Hash
		}
		h, err := putFile(repo, sub, parts[1:], blob)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		ne = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	if idx >= 0 {
		entries[idx] = ne
	} else {
		entries = append(entries, ne)
	}
	// git's order: names compared as if directories ended in "/".
	sort.Slice(entries, func(i, j int) bool { return sortName(entries[i]) < sortName(entries[j]) })
	obj := repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

func sortName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

func writeObject(repo *git.Repository, typ plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(typ)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}
