package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// dialect is what differs between the two databases the store runs on. The
// store's queries are written once, in the SQL both understand, with ?
// placeholders; the dialect rewrites the placeholders for PostgreSQL and
// supplies the few fragments that cannot be shared.
type dialect struct {
	name string // "sqlite" or "postgres"
	// skipLocked follows a row-locking subquery: FOR UPDATE SKIP LOCKED on
	// PostgreSQL (two replicas claiming at once take different rows, and
	// neither waits for the other); SQLite has one writer and no row locks.
	skipLocked string
	// nowMillis is the database's clock in unix milliseconds, as SQL.
	nowMillis string
	rebinds   *sync.Map // query → rewritten query (PostgreSQL)
}

var (
	sqliteDialect = dialect{
		name:      "sqlite",
		nowMillis: `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`,
	}
	postgresDialect = dialect{
		name:       "postgres",
		skipLocked: ` FOR UPDATE SKIP LOCKED`,
		nowMillis:  `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint`,
		rebinds:    new(sync.Map),
	}
)

func (d dialect) postgres() bool { return d.name == "postgres" }

// query rewrites q's ? placeholders as $1, $2… for PostgreSQL. A ? inside a
// quoted string or identifier is left alone.
func (d dialect) query(q string) string {
	if !d.postgres() {
		return q
	}
	if r, ok := d.rebinds.Load(q); ok {
		return r.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	r := b.String()
	d.rebinds.Store(q, r)
	return r
}

// args converts Go values the PostgreSQL driver would refuse for the
// schema's columns: booleans are stored as 0 and 1 on both databases.
func (d dialect) args(args []any) []any {
	if !d.postgres() {
		return args
	}
	for i, a := range args {
		switch v := a.(type) {
		case bool:
			args[i] = flag(v)
		case *bool:
			if v == nil {
				args[i] = nil
			} else {
				args[i] = flag(*v)
			}
		}
	}
	return args
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// handle is the store's connection pool, speaking the store's dialect.
type handle struct {
	*sql.DB
	d dialect
}

func (h handle) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return h.DB.ExecContext(ctx, h.d.query(q), h.d.args(args)...)
}

func (h handle) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return h.DB.QueryContext(ctx, h.d.query(q), h.d.args(args)...)
}

func (h handle) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return h.DB.QueryRowContext(ctx, h.d.query(q), h.d.args(args)...)
}

// BeginTx starts a transaction that speaks the store's dialect.
func (h handle) BeginTx(ctx context.Context, opts *sql.TxOptions) (*txn, error) {
	tx, err := h.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &txn{Tx: tx, d: h.d}, nil
}

// txn is a transaction speaking the store's dialect.
type txn struct {
	*sql.Tx
	d dialect
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.d.query(q), t.d.args(args)...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.d.query(q), t.d.args(args)...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.d.query(q), t.d.args(args)...)
}

// isUnique reports whether err is a unique constraint's refusal.
func isUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// retryable reports whether a PostgreSQL transaction failed only because a
// concurrent one won (a serialization failure or a deadlock): run again, it
// sees the winner's writes.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// PrepareContext prepares a statement speaking the store's dialect.
func (t *txn) PrepareContext(ctx context.Context, q string) (*stmt, error) {
	st, err := t.Tx.PrepareContext(ctx, t.d.query(q))
	if err != nil {
		return nil, err
	}
	return &stmt{Stmt: st, d: t.d}, nil
}

// stmt is a prepared statement speaking the store's dialect.
type stmt struct {
	*sql.Stmt
	d dialect
}

func (s *stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return s.Stmt.ExecContext(ctx, s.d.args(args)...)
}

// newToken returns a claim token: 16 random bytes, in hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clock returns now in unix milliseconds for a claim's due check and lease:
// the database's clock on PostgreSQL, whose replicas' clocks may disagree
// (unless a test set the store's clock), else now as given.
func (s *Store) clock(ctx context.Context, tx *txn, now time.Time) (int64, error) {
	if !s.dbClock {
		return now.UnixMilli(), nil
	}
	var ms int64
	if err := tx.QueryRowContext(ctx, `SELECT `+tx.d.nowMillis).Scan(&ms); err != nil {
		return 0, fmt.Errorf("read the database's clock: %w", err)
	}
	return ms, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
