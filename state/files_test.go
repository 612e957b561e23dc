package state

import (
	"context"
	"fmt"
	"testing"
)

func TestFilesRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows []FileRow
	for _, p := range []string{"/etc/a", "/etc/b/c", "/etc-x/d", "/etcz", "/var/www/i.php"} {
		rows = append(rows, FileRow{Path: p, Size: 3, MtimeNS: 1, CtimeNS: 2, Inode: 1 << 63, Dev: 7, Mode: 0o100644, UID: 33, GID: 33, SHA256: "h-" + p})
	}
	if err := s.PutFiles(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// Upsert replaces.
	rows[0].SHA256 = "new"
	if err := s.PutFiles(ctx, rows[:1]); err != nil {
		t.Fatal(err)
	}
	r, ok, err := s.File(ctx, "/etc/a")
	if err != nil || !ok || r.SHA256 != "new" || r.Inode != 1<<63 || r.UID != 33 || r.Mode != 0o100644 || r.Seen.IsZero() {
		t.Fatalf("File = %+v %v %v", r, ok, err)
	}
	var got []string
	if err := s.FilesWithPrefix(ctx, "/etc/", func(r FileRow) error { got = append(got, r.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[/etc/a /etc/b/c]" {
		t.Fatalf("prefix /etc/ = %v", got)
	}
	page, err := s.FilesPage(ctx, "/etc/", "/etc/", 1)
	if err != nil || len(page) != 1 || page[0].Path != "/etc/a" {
		t.Fatalf("page 1 = %v %v", page, err)
	}
	page, err = s.FilesPage(ctx, "/etc/", page[0].Path, 10)
	if err != nil || len(page) != 1 || page[0].Path != "/etc/b/c" {
		t.Fatalf("page 2 = %v %v", page, err)
	}
	if err := s.DeleteFiles(ctx, []string{"/etc/a", "/nope"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.File(ctx, "/etc/a"); ok {
		t.Fatal("deleted row still there")
	}
	s.Close()
	// Persisted across a reopen.
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.CountFiles(ctx); err != nil || n != 4 {
		t.Fatalf("count = %d %v", n, err)
	}
}

func TestPrefixEnd(t *testing.T) {
	if e, ok := prefixEnd("/etc/"); !ok || e != "/etc0" {
		t.Fatal(e, ok)
	}
	if _, ok := prefixEnd(""); ok {
		t.Fatal("empty prefix has no end")
	}
	if e, ok := prefixEnd("a\xff"); !ok || e != "b" {
		t.Fatal(e)
	}
}
