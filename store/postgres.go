package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// IsPostgres reports whether target names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than a SQLite file.
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// Redact returns target fit for logs and messages: a URL's password is
// replaced by xxxxx; a path is returned as it is.
func Redact(target string) string {
	if !IsPostgres(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		return "postgres://(a URL that does not parse)"
	}
	return u.Redacted()
}

// migrationLock is the advisory lock key that serializes migrations when
// several replicas start at once ("SeCh" as an integer).
const migrationLock = 0x53654368

// openPostgres opens the PostgreSQL database at the URL and, unless
// readOnly, brings its schema up to date. The tables live in the
// connection's current schema (search_path), so one server can hold
// several securechat databases.
func openPostgres(ctx context.Context, target string, readOnly bool, opts []Option) (*Store, error) {
	shown := Redact(target)
	s := &Store{path: shown, now: time.Now, busy: DefaultBusyTimeout, readOnly: readOnly}
	for _, o := range opts {
		o(s)
	}
	s.dbClock = !s.noDBClock
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		return nil, fmt.Errorf("open database %s: the URL does not parse: %w", shown, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	// A statement that waits for a lock longer than the busy timeout gives
	// up with ErrBusy, as SQLite's busy timeout does.
	cfg.RuntimeParams["lock_timeout"] = fmt.Sprint(s.busy.Milliseconds())
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	s.db = handle{DB: db, d: postgresDialect}
	fail := func(what string, err error) (*Store, error) {
		db.Close()
		return nil, fmt.Errorf("open database %s: %s%w", shown, what, classify(err))
	}
	if err := db.PingContext(ctx); err != nil {
		return fail("", err)
	}
	if readOnly {
		version, err := s.identifyPostgres(ctx, s.db)
		if err != nil {
			return fail("", err)
		}
		if version == 0 {
			return fail("", fmt.Errorf("no securechat tables in this database (or schema): %w", fs.ErrNotExist))
		}
		latest, err := latestVersion(postgresDialect)
		if err != nil {
			return fail("", err)
		}
		if version < latest {
			return fail("", fmt.Errorf("%w (schema %d, this securechat needs %d): run any command that writes, such as 'securechat run' or 'securechat regex add', once to upgrade it", ErrOldSchema, version, latest))
		}
		return s, nil
	}
	if err := s.migratePostgres(ctx); err != nil {
		return fail("", err)
	}
	return s, nil
}

// querier is what identifying a database needs: a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// identifyPostgres checks that the current schema is securechat's (or
// empty) and not from a newer release, and returns its version (0: empty).
func (s *Store) identifyPostgres(ctx context.Context, q querier) (int, error) {
	var tables, ours int
	if err := q.QueryRowContext(ctx,
		`SELECT COUNT(*), COUNT(*) FILTER (WHERE table_name = 'meta') FROM information_schema.tables
		 WHERE table_schema = current_schema()`).Scan(&tables, &ours); err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if tables == 0 {
		return 0, nil
	}
	var version int
	if ours == 1 {
		err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("read schema version: %w", err)
		}
	}
	if version == 0 {
		var schema string
		_ = q.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema)
		return 0, fmt.Errorf("%w: schema %q holds %d table(s) securechat did not create; point the URL at securechat's database, or at an empty one (add ?search_path=NAME for a schema of its own)", ErrForeign, schema, tables)
	}
	latest, err := latestVersion(postgresDialect)
	if err != nil {
		return 0, err
	}
	if version > latest {
		return 0, fmt.Errorf("%w (schema %d; this one knows up to %d): upgrade securechat, or point the URL at another database", ErrNewer, version, latest)
	}
	return version, nil
}

// migratePostgres applies the migrations the database lacks, each in its
// own transaction, holding an advisory lock so that replicas starting at
// once migrate one after the other.
func (s *Store) migratePostgres(ctx context.Context) error {
	ms, err := migrations(postgresDialect)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := s.runTx(ctx, nil, func(tx *txn) error {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
				return err
			}
			current, err := s.identifyPostgres(ctx, tx)
			if err != nil || current >= m.version {
				return err
			}
			body, err := migrationFS.ReadFile(m.name)
			if err != nil {
				return err
			}
			// The whole file at once: the simple protocol runs several
			// statements and leaves $$ bodies alone.
			if _, err := tx.Tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'schema_version'`, m.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// classifyPostgres maps PostgreSQL's errors to the store's sentinels.
func classifyPostgres(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "55P03", "57014": // lock_not_available (lock_timeout), query_canceled
			return fmt.Errorf("%w: %w", ErrBusy, err)
		case "3D000": // invalid_catalog_name
			return fmt.Errorf("%w (create it first, e.g. createdb NAME)", err)
		case "28000", "28P01": // invalid authorization, wrong password
			return fmt.Errorf("%w (check the user and password in the URL)", err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("cannot reach PostgreSQL (is it running, and is the host and port in the URL right?): %w", err)
	}
	return err
}
