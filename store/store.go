// Package store is securechat's system of record: the regexes admins keep, the
// leaks the daemon found and the durable queue of deletions still to be done,
// in one SQLite file that the CLI and a running daemon share.
//
// The store never sees message text: a leak carries a masked excerpt and byte
// offsets only.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound is returned when a row asked for by id does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate is returned when a regex with the same pattern exists already.
	ErrDuplicate = errors.New("already exists")
	// ErrNotDatabase is returned by Open when the file is not a SQLite database
	// or is damaged.
	ErrNotDatabase = errors.New("not a securechat database, or damaged")
	// ErrBusy is returned when another process held the database locked for
	// longer than the busy timeout.
	ErrBusy = errors.New("database is busy")
)

// DefaultPath is the database file used when none is configured.
const DefaultPath = "securechat.db"

// DefaultBusyTimeout is how long a connection waits for another writer
// before it gives up with ErrBusy. Writes are short, so reaching it means
// something holds a lock for far too long (a stuck sqlite3 shell, say).
const DefaultBusyTimeout = 10 * time.Second

// Store is a handle on one securechat database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
	// light is a connection for writes that need not survive a power cut
	// (deletion claims: losing one only makes a deletion due again), made
	// with synchronous=NORMAL so it costs no fsync.
	light *sql.DB
	path  string
	now   func() time.Time
	busy  time.Duration
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store stamps rows with (tests use a fake one).
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithBusyTimeout sets how long a write waits for a lock held by another
// connection [DefaultBusyTimeout].
func WithBusyTimeout(d time.Duration) Option {
	return func(s *Store) { s.busy = d }
}

// Open opens the database at path, creating the file (mode 0600) and its
// directory (0700) when they do not exist, and brings its schema up to date.
// It returns ErrNotDatabase (wrapped) for a file that is not a usable
// database and ErrBusy when another process keeps it locked.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		path = DefaultPath
	}
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	s := &Store{path: path, now: time.Now, busy: DefaultBusyTimeout}
	for _, o := range opts {
		o(s)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", strconv.Itoa(int(s.busy/time.Millisecond)))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	// FULL: a commit is on disk before we acknowledge the event to Slack, so
	// a leak that was acknowledged survives a power cut, not only a crash.
	q.Set("_synchronous", "FULL")
	file := "file:" + (&url.URL{Path: path}).EscapedPath() + "?"
	db, err := sql.Open("sqlite3", file+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.db = db
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	q.Set("_synchronous", "NORMAL")
	if s.light, err = sql.Open("sqlite3", file+q.Encode()); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.light.SetMaxOpenConns(1)
	return s, nil
}

// prepareFile creates the directory and an empty file with private modes, so
// that SQLite (which copies the database's mode to the -wal and -shm files)
// never creates them world-readable.
func prepareFile(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create database directory %s: %w", dir, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	return f.Close()
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return errors.Join(s.light.Close(), s.db.Close()) }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil {
		return fmt.Errorf("ping database: %w", classify(err))
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal (is the file on a network filesystem?)", mode)
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := s.applyMigration(ctx, m.version, m.name); err != nil {
			return fmt.Errorf("migration %s: %w", filepath.Base(m.name), err)
		}
	}
	return nil
}

type migration struct {
	version int
	name    string
}

// migrations lists the embedded migrations by the version their NNNN_ prefix
// gives, and checks that the versions run 1, 2, 3… with no gap or repeat.
func migrations() ([]migration, error) {
	return parseMigrations(migrationFS)
}

func parseMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := filepath.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v < 1 {
			return nil, fmt.Errorf("migration %s: the name must start with a 4-digit version and _ (0004_name.sql)", base)
		}
		ms = append(ms, migration{version: v, name: name})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions run 1, 2, 3… without gaps or repeats)", filepath.Base(m.name), m.version, i+1)
		}
	}
	return ms, nil
}

// applyMigration runs one numbered migration in its own transaction unless
// PRAGMA user_version says it ran already.
func (s *Store) applyMigration(ctx context.Context, version int, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&current); err != nil {
		return err
	}
	if current >= version {
		return nil
	}
	body, err := migrationFS.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, version)); err != nil {
		return err
	}
	return tx.Commit()
}

// classify maps SQLite's low-level errors to the store's sentinels so callers
// (and the CLI's error messages) can tell a busy database from a broken one.
func classify(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return fmt.Errorf("%w: %w", ErrBusy, err)
		case sqlite3.ErrNotADB, sqlite3.ErrCorrupt:
			return fmt.Errorf("%w: %w", ErrNotDatabase, err)
		}
	}
	return err
}

func (s *Store) millis() int64 { return s.now().UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
