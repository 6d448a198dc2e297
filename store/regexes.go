package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Regex is one pattern the admins keep.
type Regex struct {
	ID          int64     `json:"id"`
	Pattern     string    `json:"pattern"`
	Description string    `json:"description"`
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// DuplicateError says which regex already holds a pattern. It matches
// ErrDuplicate with errors.Is.
type DuplicateError struct {
	ID      int64
	Pattern string
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("pattern %q already exists as regex %d", e.Pattern, e.ID)
}

// Is reports whether target is ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// AddRegex stores a new enabled regex and returns it with its id. The pattern
// is not validated here (detect does that). It returns a *DuplicateError when
// the same pattern is stored already.
func (s *Store) AddRegex(ctx context.Context, pattern, description string) (Regex, error) {
	now := s.millis()
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO regexes (pattern, description, enabled, created_at, updated_at) VALUES (?, ?, 1, ?, ?)`,
		pattern, description, now, now)
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			var id int64
			if qerr := s.db.QueryRowContext(ctx, `SELECT id FROM regexes WHERE pattern = ?`, pattern).Scan(&id); qerr == nil {
				return Regex{}, &DuplicateError{ID: id, Pattern: pattern}
			}
			return Regex{}, fmt.Errorf("add regex: %w", ErrDuplicate)
		}
		return Regex{}, fmt.Errorf("add regex: %w", classify(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Regex{}, fmt.Errorf("add regex: %w", err)
	}
	t := fromMillis(now)
	return Regex{ID: id, Pattern: pattern, Description: description, Enabled: true, CreatedAt: t, UpdatedAt: t}, nil
}

// Regexes returns every stored regex, enabled or not, by id.
func (s *Store) Regexes(ctx context.Context) ([]Regex, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, pattern, description, enabled, created_at, updated_at FROM regexes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list regexes: %w", classify(err))
	}
	defer rows.Close()
	var out []Regex
	for rows.Next() {
		var r Regex
		var created, updated int64
		if err := rows.Scan(&r.ID, &r.Pattern, &r.Description, &r.Enabled, &created, &updated); err != nil {
			return nil, fmt.Errorf("list regexes: %w", err)
		}
		r.CreatedAt, r.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list regexes: %w", classify(err))
	}
	return out, nil
}

// Regex returns one regex by id, or ErrNotFound.
func (s *Store) Regex(ctx context.Context, id int64) (Regex, error) {
	var r Regex
	var created, updated int64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, pattern, description, enabled, created_at, updated_at FROM regexes WHERE id = ?`, id).
		Scan(&r.ID, &r.Pattern, &r.Description, &r.Enabled, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Regex{}, fmt.Errorf("regex %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Regex{}, fmt.Errorf("get regex %d: %w", id, classify(err))
	}
	r.CreatedAt, r.UpdatedAt = fromMillis(created), fromMillis(updated)
	return r, nil
}

// DeleteRegex removes a regex. Leaks it found keep its id and description.
// It returns ErrNotFound when there is no such regex.
func (s *Store) DeleteRegex(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM regexes WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("remove regex %d: %w", id, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("remove regex %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("regex %d: %w", id, ErrNotFound)
	}
	return nil
}

// SetRegexEnabled enables or disables a regex without removing it.
// It returns ErrNotFound when there is no such regex.
func (s *Store) SetRegexEnabled(ctx context.Context, id int64, enabled bool) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE regexes SET enabled = ?, updated_at = ? WHERE id = ?`, enabled, s.millis(), id)
	if err != nil {
		return fmt.Errorf("update regex %d: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("regex %d: %w", id, ErrNotFound)
	}
	return nil
}

// RulesGeneration returns a number that changes whenever the regex table
// changes, from this process or any other. It is one indexed read, cheap
// enough to poll every second.
func (s *Store) RulesGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'rules_generation'`).Scan(&g)
	if err != nil {
		return 0, fmt.Errorf("read rules generation: %w", classify(err))
	}
	return g, nil
}
