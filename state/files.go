package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// FileRow is the last known state of one watched file, as the file
// integrity scanner (agent/fim) recorded it. SHA256 is the hex digest of the
// content, empty for files recorded by metadata only (bigger than the
// scanner's hash limit), or "link:<target>" for a symbolic link. Seen is when
// the scanner last wrote the row (the last time it observed a change), not
// the last scan: rewriting every unchanged row on each rescan would cost more
// than the rescan itself.
type FileRow struct {
	Path    string
	Size    int64
	MtimeNS int64
	CtimeNS int64
	Inode   uint64
	Dev     uint64
	Mode    uint32
	UID     uint32
	GID     uint32
	SHA256  string
	Seen    time.Time
}

const fileCols = `path, size, mtime_ns, ctime_ns, inode, dev, mode, uid, gid, sha256, seen`

// PutFiles inserts or replaces rows in one transaction, so a crash leaves
// the whole batch or none of it; the scanner calls it once per batch
// (hundreds of rows) because one transaction per file would make the
// synchronous commit the bottleneck of a scan.
func (s *Store) PutFiles(ctx context.Context, rows []FileRow) error {
	if len(rows) == 0 {
		return nil
	}
	return s.Update(ctx, func(t *Tx) error { return t.PutFiles(ctx, rows) })
}

// PutFiles is PutFiles inside a caller's transaction.
func (t *Tx) PutFiles(ctx context.Context, rows []FileRow) error {
	st, err := t.tx.PrepareContext(ctx, `INSERT INTO files(`+fileCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,
		inode = excluded.inode, dev = excluded.dev, mode = excluded.mode, uid = excluded.uid, gid = excluded.gid,
		sha256 = excluded.sha256, seen = excluded.seen`)
	if err != nil {
		return fmt.Errorf("state: prepare file upsert: %w", err)
	}
	defer st.Close()
	for i := range rows {
		r := &rows[i]
		seen := r.Seen
		if seen.IsZero() {
			seen = time.Now()
		}
		// SQLite integers are signed 64-bit: inode and dev are stored by
		// their bit pattern and read back the same way.
		if _, err := st.ExecContext(ctx, r.Path, r.Size, r.MtimeNS, r.CtimeNS, int64(r.Inode), int64(r.Dev),
			int64(r.Mode), int64(r.UID), int64(r.GID), r.SHA256, seen.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("state: put file %s: %w", r.Path, err)
		}
	}
	return nil
}

// DeleteFiles removes rows by path in one transaction.
func (s *Store) DeleteFiles(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	return s.Update(ctx, func(t *Tx) error {
		st, err := t.tx.PrepareContext(ctx, `DELETE FROM files WHERE path = ?`)
		if err != nil {
			return fmt.Errorf("state: prepare file delete: %w", err)
		}
		defer st.Close()
		for _, p := range paths {
			if _, err := st.ExecContext(ctx, p); err != nil {
				return fmt.Errorf("state: delete file %s: %w", p, err)
			}
		}
		return nil
	})
}

// File returns the row of one path; ok is false when there is none.
func (s *Store) File(ctx context.Context, path string) (FileRow, bool, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files WHERE path = ?`, path)
	r, err := scanFile(row)
	if errors.Is(err, sql.ErrNoRows) {
		return FileRow{}, false, nil
	}
	if err != nil {
		return FileRow{}, false, fmt.Errorf("state: file %s: %w", path, err)
	}
	return r, true, nil
}

// FilesWithPrefix calls fn for every row whose path starts with prefix
// (byte-wise), in path order; "" visits all. Pass "/etc/" for the files
// below /etc. fn must not write to the store: the store has one
// connection, held by the iteration until it ends (collect, then write).
func (s *Store) FilesWithPrefix(ctx context.Context, prefix string, fn func(FileRow) error) error {
	var (
		rows *sql.Rows
		err  error
	)
	// A range on the primary key uses its index, unlike LIKE (whose
	// wildcards would also need escaping in paths).
	if hi, ok := prefixEnd(prefix); ok {
		rows, err = s.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE path >= ? AND path < ? ORDER BY path`, prefix, hi)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE path >= ? ORDER BY path`, prefix)
	}
	if err != nil {
		return fmt.Errorf("state: files %q: %w", prefix, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanFile(rows)
		if err != nil {
			return fmt.Errorf("state: files %q: %w", prefix, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("state: files %q: %w", prefix, err)
	}
	return nil
}

// CountFiles returns the number of rows.
func (s *Store) CountFiles(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM files`).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count files: %w", err)
	}
	return n, nil
}

// prefixEnd is the smallest string greater than every string starting with
// p; ok is false when there is none (empty p, or only 0xff bytes).
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

type rowScanner interface{ Scan(dest ...any) error }

func scanFile(sc rowScanner) (FileRow, error) {
	var (
		r                          FileRow
		inode, dev, mode, uid, gid int64
		seen                       string
	)
	if err := sc.Scan(&r.Path, &r.Size, &r.MtimeNS, &r.CtimeNS, &inode, &dev, &mode, &uid, &gid, &r.SHA256, &seen); err != nil {
		return FileRow{}, err
	}
	r.Inode, r.Dev, r.Mode, r.UID, r.GID = uint64(inode), uint64(dev), uint32(mode), uint32(uid), uint32(gid)
	r.Seen, _ = time.Parse(time.RFC3339Nano, seen)
	return r, nil
}

// FilesPage returns up to limit rows whose path starts with prefix and
// sorts after after (byte-wise), in path order: a cursor that holds no
// connection between pages, so a scan can merge the stored rows with its
// walk while it writes, in constant memory. Start with after = prefix.
func (s *Store) FilesPage(ctx context.Context, prefix, after string, limit int) ([]FileRow, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if hi, ok := prefixEnd(prefix); ok {
		rows, err = s.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE path > ? AND path < ? ORDER BY path LIMIT ?`, after, hi, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE path > ? ORDER BY path LIMIT ?`, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("state: files page %q: %w", prefix, err)
	}
	defer rows.Close()
	out := make([]FileRow, 0, limit)
	for rows.Next() {
		r, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("state: files page %q: %w", prefix, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: files page %q: %w", prefix, err)
	}
	return out, nil
}
