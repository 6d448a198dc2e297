package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// copyTables are the tables CopyTo copies, parents before the rows that
// refer to them. Leases are not copied: they belong to running daemons.
var copyTables = []string{
	"meta", "regexes", "deletions", "leaks", "allowed_values", "outbox", "scan_counts", "watermarks",
	"daemon_state", "names", "sweeps", "sweep_cursors", "catchup_windows", "catchup_progress", "instances",
	"reports", "audit",
}

// CopyCount is one table's rows in the source and, after the copy, in the
// target.
type CopyCount struct {
	Table  string `json:"table"`
	Source int64  `json:"source"`
	Target int64  `json:"target"`
}

// ErrNotEmpty is returned by CopyTo for a target that holds data already.
var ErrNotEmpty = errors.New("the target database holds securechat data already")

// CopyTo copies every row of the SQLite store s into dst, a PostgreSQL store
// at the same schema version that holds no rule, leak, deletion or
// notification yet, in one transaction: a failure leaves dst as it was.
// The ids are kept, and dst's id sequences start past them (a rule id is
// never reused). It then counts every table on both sides and returns the
// counts; a difference is an error.
func (s *Store) CopyTo(ctx context.Context, dst *Store) ([]CopyCount, error) {
	if s.db.d.postgres() || !dst.db.d.postgres() {
		return nil, errors.New("copy: only from a SQLite database into a PostgreSQL one")
	}
	var rows int64
	if err := dst.db.QueryRowContext(ctx,
		`SELECT (SELECT COUNT(*) FROM regexes) + (SELECT COUNT(*) FROM leaks) + (SELECT COUNT(*) FROM deletions) + (SELECT COUNT(*) FROM outbox)`).Scan(&rows); err != nil {
		return nil, fmt.Errorf("copy: look at the target: %w", classify(err))
	}
	if rows > 0 {
		return nil, fmt.Errorf("copy: %w (%d rules, leaks, deletions and notifications): point --to at an empty database or schema", ErrNotEmpty, rows)
	}
	// The source is read in one read transaction: a daemon writing to it
	// meanwhile does not make the copy inconsistent (stop it all the same:
	// what it records afterwards is not copied).
	src, err := s.db.DB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("copy: read the source: %w", classify(err))
	}
	defer src.Rollback()
	conn, err := dst.db.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("copy: connect to the target: %w", classify(err))
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pg := dc.(*stdlib.Conn).Conn()
		tx, err := pg.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		// The new database's own meta rows (generation, schema version)
		// give way to the source's, but for the schema version.
		if _, err := tx.Exec(ctx, `DELETE FROM meta WHERE key != 'schema_version'`); err != nil {
			return err
		}
		for _, table := range copyTables {
			if err := copyTable(ctx, src, tx, table); err != nil {
				return fmt.Errorf("table %s: %w", table, err)
			}
		}
		// Sequences start past every id copied; the rules' past every id a
		// finding or an allowlisted value ever named too.
		var seq int64
		if err := src.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'regexes'), 0)`).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('regexes', 'id'), GREATEST($1::bigint,
			(SELECT COALESCE(MAX(id), 0) FROM regexes), (SELECT COALESCE(MAX(regex_id), 0) FROM leaks),
			(SELECT COALESCE(MAX(regex_id), 0) FROM allowed_values), 1))`, seq); err != nil {
			return err
		}
		for _, table := range []string{"deletions", "leaks", "allowed_values", "outbox", "sweeps", "catchup_windows", "reports", "audit"} {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+table+`', 'id'), GREATEST((SELECT COALESCE(MAX(id), 0) FROM `+table+`), 1))`); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("copy: %w", classify(err))
	}
	var counts []CopyCount
	var differ []string
	for _, table := range copyTables {
		c := CopyCount{Table: table}
		if err := src.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&c.Source); err != nil {
			return nil, fmt.Errorf("copy: count %s in the source: %w", table, err)
		}
		if err := dst.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&c.Target); err != nil {
			return nil, fmt.Errorf("copy: count %s in the target: %w", table, classify(err))
		}
		if table == "meta" {
			c.Target-- // the target's schema_version
		}
		if c.Source != c.Target {
			differ = append(differ, fmt.Sprintf("%s: %d in the source, %d copied", table, c.Source, c.Target))
		}
		counts = append(counts, c)
	}
	if len(differ) > 0 {
		return counts, fmt.Errorf("copy: the counts differ: %v", differ)
	}
	return counts, nil
}

// copyTable streams one table from the SQLite transaction into PostgreSQL
// with COPY.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, table string) error {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	from := &rowSource{rows: rows, n: len(cols)}
	if table == "meta" {
		from.skip = func(v []any) bool { return fmt.Sprint(v[0]) == "schema_version" }
	}
	if _, err := dst.CopyFrom(ctx, pgx.Identifier{table}, cols, from); err != nil {
		return err
	}
	return rows.Err()
}

// rowSource feeds sql.Rows to pgx's CopyFrom.
type rowSource struct {
	rows *sql.Rows
	n    int
	vals []any
	err  error
	skip func([]any) bool
}

func (r *rowSource) Next() bool {
	for r.rows.Next() {
		r.vals = make([]any, r.n)
		ptrs := make([]any, r.n)
		for i := range ptrs {
			ptrs[i] = &r.vals[i]
		}
		if r.err = r.rows.Scan(ptrs...); r.err != nil {
			return false
		}
		for i, v := range r.vals {
			if b, ok := v.([]byte); ok {
				r.vals[i] = string(b)
			}
		}
		if r.skip != nil && r.skip(r.vals) {
			continue
		}
		return true
	}
	return false
}

func (r *rowSource) Values() ([]any, error) { return r.vals, r.err }
func (r *rowSource) Err() error             { return r.err }
