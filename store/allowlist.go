package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrNoFingerprint is returned by AllowValue for a leak recorded without a
// value fingerprint (no allowlist key was configured then).
var ErrNoFingerprint = errors.New("the leak has no value fingerprint")

// AllowedValue is a value that is not a leak, known by its keyed fingerprint.
type AllowedValue struct {
	ID        int64     `json:"id"`
	RegexID   int64     `json:"regex_id"`
	LeakID    int64     `json:"leak_id"`
	Excerpt   string    `json:"excerpt"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// AllowValue allowlists the value of a leak. Allowing a value twice returns
// the existing entry. It returns ErrNotFound for an unknown leak and
// ErrNoFingerprint for a leak without a fingerprint.
func (s *Store) AllowValue(ctx context.Context, leakID int64, note string) (AllowedValue, error) {
	var mac, excerpt string
	var regexID int64
	err := s.db.QueryRowContext(ctx, `SELECT value_mac, excerpt, regex_id FROM leaks WHERE id = ?`, leakID).Scan(&mac, &excerpt, &regexID)
	if errors.Is(err, sql.ErrNoRows) {
		return AllowedValue{}, fmt.Errorf("leak %d: %w", leakID, ErrNotFound)
	}
	if err != nil {
		return AllowedValue{}, fmt.Errorf("allow leak %d: %w", leakID, classify(err))
	}
	if mac == "" {
		return AllowedValue{}, fmt.Errorf("leak %d: %w", leakID, ErrNoFingerprint)
	}
	now := s.millis()
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO allowed_values (mac, regex_id, leak_id, excerpt, note, created_at) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (mac) DO NOTHING`, mac, regexID, leakID, excerpt, note, now); err != nil {
		return AllowedValue{}, fmt.Errorf("allow leak %d: %w", leakID, classify(err))
	}
	var a AllowedValue
	var created int64
	err = s.db.QueryRowContext(ctx, `SELECT id, regex_id, leak_id, excerpt, note, created_at FROM allowed_values WHERE mac = ?`, mac).
		Scan(&a.ID, &a.RegexID, &a.LeakID, &a.Excerpt, &a.Note, &created)
	if err != nil {
		return AllowedValue{}, fmt.Errorf("allow leak %d: %w", leakID, classify(err))
	}
	a.CreatedAt = fromMillis(created)
	return a, nil
}

// AllowedValues lists the allowlist.
func (s *Store) AllowedValues(ctx context.Context) ([]AllowedValue, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, regex_id, leak_id, excerpt, note, created_at FROM allowed_values ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list allowed values: %w", classify(err))
	}
	defer rows.Close()
	var out []AllowedValue
	for rows.Next() {
		var a AllowedValue
		var created int64
		if err := rows.Scan(&a.ID, &a.RegexID, &a.LeakID, &a.Excerpt, &a.Note, &created); err != nil {
			return nil, fmt.Errorf("list allowed values: %w", err)
		}
		a.CreatedAt = fromMillis(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// AllowedMACs returns the fingerprints of the allowlisted values.
func (s *Store) AllowedMACs(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT mac FROM allowed_values`)
	if err != nil {
		return nil, fmt.Errorf("read allowlist: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, fmt.Errorf("read allowlist: %w", err)
		}
		out[m] = true
	}
	return out, rows.Err()
}

// RemoveAllowed takes an entry off the allowlist; ErrNotFound if absent.
func (s *Store) RemoveAllowed(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM allowed_values WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("remove allowed value %d: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("allowed value %d: %w", id, ErrNotFound)
	}
	return nil
}
