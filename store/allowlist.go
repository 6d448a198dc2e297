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
	a, _, err := s.AllowLeak(ctx, leakID, note, "")
	return a, err
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

// RemoveAllowed takes an entry off the allowlist (its value fires again);
// ErrNotFound if absent. A non-empty by is audited in the same transaction.
func (s *Store) RemoveAllowed(ctx context.Context, id int64, by string) error {
	err := s.inTx(ctx, func(tx *txn) error {
		var excerpt string
		var leakID int64
		err := tx.QueryRowContext(ctx, `DELETE FROM allowed_values WHERE id = ? RETURNING excerpt, leak_id`, id).Scan(&excerpt, &leakID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("allowed value %d: %w", id, ErrNotFound)
		}
		if err != nil || by == "" {
			return err
		}
		_, err = audit(ctx, tx, s.millis(), AuditEntry{Actor: by, Action: "value.unallow", Target: LeakTarget(leakID),
			Detail: fmt.Sprintf("allowlist entry %d (%s) removed: the value fires again", id, excerpt)}, "")
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove allowed value %d: %w", id, err)
	}
	return err
}
