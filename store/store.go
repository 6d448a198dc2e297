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

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
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
	// ErrForeign is returned by Open for a SQLite database that belongs to
	// another application: securechat does not add its tables to it.
	ErrForeign = errors.New("not a securechat database")
	// ErrNewer is returned by Open for a database written by a newer
	// securechat, whose schema this one does not know.
	ErrNewer = errors.New("written by a newer securechat")
	// ErrClaimLost is returned for an outcome whose claim was overtaken:
	// its lease ran out and another daemon claimed the row since, so the
	// newer attempt's outcome stands.
	ErrClaimLost = errors.New("claimed by another daemon since")
	// ErrOldSchema is returned by OpenReadOnly for a database whose schema
	// is older than this securechat's: only a writable Open upgrades it.
	ErrOldSchema = errors.New("database schema is older than this securechat")
)

// ApplicationID is the SQLite application_id securechat stamps its
// databases with (the bytes "SeCh").
const ApplicationID = 0x53654368

// DefaultPath is the database file used when none is configured.
const DefaultPath = "securechat.db"

// DefaultBusyTimeout is how long a connection waits for another writer
// before it gives up with ErrBusy. Writes are short, so reaching it means
// something holds a lock for far too long (a stuck sqlite3 shell, say).
const DefaultBusyTimeout = 10 * time.Second

// Store is a handle on one securechat database. It is safe for concurrent use.
type Store struct {
	db   handle
	path string // the file, or the PostgreSQL URL without its password
	now  func() time.Time
	busy time.Duration
	// readOnly: opened with OpenReadOnly.
	readOnly bool
	// dbClock: claims read the database's clock (PostgreSQL, unless
	// WithDatabaseClock(false)).
	dbClock   bool
	noDBClock bool
	// instance is the daemon using the store (WithInstance).
	instance string
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store stamps rows with (tests use a fake one).
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithDatabaseClock sets whether claims on PostgreSQL take their due check
// and lease from the database's clock [true], so that replicas whose
// clocks disagree still agree on when a lease ends. Tests that drive time
// through the now they pass turn it off. SQLite always uses the now given.
func WithDatabaseClock(on bool) Option {
	return func(s *Store) { s.noDBClock = !on }
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
	if IsPostgres(path) {
		return openPostgres(ctx, path, false, opts)
	}
	if path == "" {
		path = DefaultPath
	}
	s := &Store{path: path, now: time.Now, busy: DefaultBusyTimeout}
	for _, o := range opts {
		o(s)
	}
	// Look before touching: setting WAL mode or migrating would change
	// another application's file.
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		ro, err := OpenReadOnly(ctx, path, opts...)
		if err != nil && !errors.Is(err, ErrOldSchema) {
			return nil, err
		}
		if ro != nil {
			ro.Close()
		}
	}
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", strconv.Itoa(int(s.busy/time.Millisecond)))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	// FULL: a commit is on disk before we acknowledge the event to Slack, so
	// a leak that was acknowledged survives a power cut, not only a crash.
	q.Set("_synchronous", "FULL")
	// Each pooled connection keeps a page cache (2 MB by default) that fills
	// as the database grows: bounded to 512 KB, and idle connections are
	// closed after a minute, so that a long-running daemon's memory stays
	// flat. The hot pages (rules, pending deletions) are few. Up to 8 are
	// kept idle, about as many as the daemon's parts use at once: with 4,
	// a busy daemon closed and reopened a connection every thousand
	// messages (a schema parse and a new cache each time, C memory that
	// fragments).
	q.Set("_cache_size", "-512")
	file := "file:" + (&url.URL{Path: path}).EscapedPath() + "?"
	db, err := sql.Open("sqlite3", file+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	s.db = handle{DB: db, d: sqliteDialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, ApplicationID)); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: stamp it as securechat's: %w", path, classify(err))
	}
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

// OpenReadOnly opens an existing database for reading only: it creates
// nothing, never migrates and never writes, so it works on a file the user
// may only read. It returns ErrForeign, ErrNewer or ErrNotDatabase (wrapped)
// for a file that is not a current securechat database, ErrOldSchema for
// one that needs upgrading first, and an error matching fs.ErrNotExist when
// there is no file.
func OpenReadOnly(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if IsPostgres(path) {
		return openPostgres(ctx, path, true, opts)
	}
	if path == "" {
		path = DefaultPath
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{path: path, now: time.Now, busy: DefaultBusyTimeout, readOnly: true}
	for _, o := range opts {
		o(s)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", strconv.Itoa(int(s.busy/time.Millisecond)))
	q.Set("_foreign_keys", "on")
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		// No connection has the database open (a WAL database keeps its
		// -wal file while one has): read the file as it is, taking no
		// lock and creating no -wal or -shm file. A read-only open must
		// work where the user may only read, and must never leave files
		// another user (the owner's daemon) then cannot write. A daemon
		// that starts meanwhile writes to its own -wal file, not to the
		// database file, until it checkpoints.
		q.Set("immutable", "1")
	}
	db, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.db = handle{DB: db, d: sqliteDialect}
	version, err := s.identify(ctx)
	if err == nil {
		var latest int
		if latest, err = latestVersion(sqliteDialect); err == nil && version < latest {
			err = fmt.Errorf("%w (schema %d, this securechat needs %d): run any command that writes, such as 'securechat run' or 'securechat regex add', once to upgrade it", ErrOldSchema, version, latest)
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	return s, nil
}

// PoolStats returns the connection pool's figures (connections open, closed
// and waited for), for the daemon's metrics.
func (s *Store) PoolStats() sql.DBStats { return s.db.Stats() }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// identify checks that the database is securechat's (or new and empty) and
// not from a newer release, and returns its schema version.
func (s *Store) identify(ctx context.Context) (int, error) {
	var appID, version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		return 0, fmt.Errorf("read application id: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if appID != 0 && appID != ApplicationID {
		return 0, fmt.Errorf("%w: the file belongs to another application (SQLite application_id %#x); point --db at securechat's database", ErrForeign, appID)
	}
	if appID == 0 {
		// Not stamped: a new file, or one from a release before the stamp
		// (which always has the meta table and its rules generation).
		var tables, ours int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables); err != nil {
			return 0, fmt.Errorf("read schema: %w", err)
		}
		if tables == 0 && version != 0 {
			// Another application's database with nothing in it yet: a new
			// file has no schema version. Decided before anything is written.
			return 0, fmt.Errorf("%w: the file has no tables but schema version %d, set by another application; point --db at securechat's database, or at a new file", ErrForeign, version)
		}
		if tables > 0 {
			_ = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).Scan(&ours)
			if ours == 1 {
				_ = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM meta WHERE key = 'rules_generation'`).Scan(&ours)
			}
			if ours != 1 || version == 0 {
				return 0, fmt.Errorf("%w: the file holds %d table(s) securechat did not create; point --db at securechat's database, or at a new file", ErrForeign, tables)
			}
		}
	}
	latest, err := latestVersion(sqliteDialect)
	if err != nil {
		return 0, err
	}
	if version > latest {
		return 0, fmt.Errorf("%w (schema %d; this one knows up to %d): upgrade securechat, or point --db at another database", ErrNewer, version, latest)
	}
	return version, nil
}

// ReadOnly reports whether the store was opened with OpenReadOnly.
func (s *Store) ReadOnly() bool { return s.readOnly }

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
	// Open identified the file (another application's, a newer release's)
	// before anything touched it; a new file needs nothing.
	ms, err := migrations(sqliteDialect)
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

// latestVersion is the schema version this securechat writes on d.
func latestVersion(d dialect) (int, error) {
	ms, err := migrations(d)
	if err != nil || len(ms) == 0 {
		return 0, fmt.Errorf("read embedded migrations: %v", err)
	}
	return ms[len(ms)-1].version, nil
}

// firstPostgresVersion is the version of the PostgreSQL baseline: the
// schema SQLite databases had reached when PostgreSQL support came. From
// there on, both databases get each schema change under one number.
const firstPostgresVersion = 11

// migrations lists d's embedded migrations by the version their NNNN_
// prefix gives, and checks that the versions run on with no gap or repeat.
func migrations(d dialect) ([]migration, error) {
	if d.postgres() {
		return parseMigrations(migrationFS, "migrations/postgres", firstPostgresVersion)
	}
	return parseMigrations(migrationFS, "migrations/sqlite", 1)
}

func parseMigrations(fsys fs.FS, dir string, first int) ([]migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
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
		if m.version != i+first {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions run %d, %d, %d… without gaps or repeats)", filepath.Base(m.name), m.version, i+first, first, first+1, first+2)
		}
	}
	return ms, nil
}

// fkOffMarker, on a migration's first line, runs it with foreign keys off
// (SQLite's procedure for rebuilding a table others refer to) and checks
// them before it commits.
const fkOffMarker = "-- securechat:foreign-keys-off"

// applyMigration runs one numbered migration in its own transaction, on one
// connection, unless PRAGMA user_version says it ran already.
func (s *Store) applyMigration(ctx context.Context, version int, name string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	body, err := migrationFS.ReadFile(name)
	if err != nil {
		return err
	}
	fkOff := strings.HasPrefix(string(body), fkOffMarker)
	if fkOff {
		// Outside the transaction: SQLite ignores this pragma inside one.
		if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			return err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`)
	}
	tx, err := conn.BeginTx(ctx, nil)
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
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if fkOff {
		rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
		if err != nil {
			return err
		}
		bad := rows.Next()
		rows.Close()
		if bad {
			return errors.New("the migration would break a foreign key; nothing was changed")
		}
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
		return err
	}
	return classifyPostgres(err)
}

func (s *Store) millis() int64 { return s.now().UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// IsDemo reports whether 'securechat demo' created this database.
func (s *Store) IsDemo(ctx context.Context) (bool, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'demo'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read demo marker: %w", classify(err))
	}
	return v == 1, nil
}

// MarkDemo marks the database as the demo's, so that the next demo may reset it.
func (s *Store) MarkDemo(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('demo', 1) ON CONFLICT (key) DO UPDATE SET value = 1`); err != nil {
		return fmt.Errorf("mark the demo's database: %w", classify(err))
	}
	return nil
}

// CheckSchema checks that the database answers and is at the schema this
// securechat writes (a replica of an older or newer release beside it, or a
// restore of an old backup, says so here): for readiness checks.
func (s *Store) CheckSchema(ctx context.Context) error {
	q := `PRAGMA user_version`
	if s.db.d.postgres() {
		q = `SELECT value FROM meta WHERE key = 'schema_version'`
	}
	var version int
	if err := s.db.QueryRowContext(ctx, q).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", classify(err))
	}
	latest, err := latestVersion(s.db.d)
	if err != nil {
		return err
	}
	if version != latest {
		return fmt.Errorf("database schema is %d, this securechat writes %d", version, latest)
	}
	return nil
}
