package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Deletion statuses besides pending, deleted and failed.
const (
	// StatusHeld: kept, not carried out (monitor mode); resumable.
	StatusHeld = "held"
	// StatusCancelled: never to be carried out.
	StatusCancelled = "cancelled"
)

// HoldMonitor is the hold reason of deletions held by monitor mode.
const HoldMonitor = "monitor mode"

// inTx runs f in one write transaction and classifies its error. On
// PostgreSQL the transaction is serializable: whatever f reads and then
// writes holds as if no other replica wrote meanwhile (the breaker's count,
// a trial's end, a sweep's cursor), and a transaction that lost to a
// concurrent one is run again, so f must start from scratch each time.
// SQLite gets the same from its single writer (_txlock=immediate).
func (s *Store) inTx(ctx context.Context, f func(tx *txn) error) error {
	return s.inTxLevel(ctx, sql.LevelSerializable, f)
}

// maxTxRuns bounds how often a transaction that lost to concurrent ones is
// run again.
const maxTxRuns = 30

func (s *Store) inTxLevel(ctx context.Context, level sql.IsolationLevel, f func(tx *txn) error) error {
	var opts *sql.TxOptions
	if s.db.d.postgres() {
		opts = &sql.TxOptions{Isolation: level}
	}
	for run := 1; ; run++ {
		err := s.runTx(ctx, opts, f)
		if err == nil || !retryable(err) || run == maxTxRuns {
			return classify(err)
		}
		// Back off a little, more each time, with jitter, so that the
		// replicas that collided do not collide again.
		d := time.Duration(run) * time.Duration(1+rand.IntN(4)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

func (s *Store) runTx(ctx context.Context, opts *sql.TxOptions, f func(tx *txn) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// enforcing is the SQL condition "finding l (joined with its rule r) still
// calls for deleting its message", checked against the rule as it is now:
// the finding was a delete; the rule is enabled with action delete; the
// finding was recorded after the rule got its current definition (a
// finding of a removed rule whose id was reused, or of an older pattern,
// is not this rule's); and its value was not allowlisted since. Every path
// that decides whether a deletion is still justified uses it: the
// deleter's claim, resuming, cancelling on rule changes, the breaker's
// holds and 'scan --enforce'.
const enforcing = `l.action = 'delete' AND r.enabled = 1 AND r.action = 'delete' AND l.id > r.defined_after_leak
	AND NOT (l.value_mac != '' AND EXISTS (SELECT 1 FROM allowed_values a WHERE a.mac = l.value_mac))`

// justified is the SQL condition "deletion d still has an enforcing finding".
const justified = `EXISTS (SELECT 1 FROM leaks l JOIN regexes r ON r.id = l.regex_id
	WHERE l.deletion_id = d.id AND ` + enforcing + `)`

// cancelUnjustified cancels the pending and held deletions that no finding of
// an enabled delete-action rule justifies any more.
func cancelUnjustified(ctx context.Context, tx *txn, now int64, by, why string) (int, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE deletions AS d SET status = 'cancelled', cancelled_at = ?, cancelled_by = ?, cancel_reason = ?, updated_at = ?
		 WHERE d.status IN ('pending', 'held') AND NOT `+justified,
		now, by, why+": no enforcing rule justifies it any more", now)
	if err != nil {
		return 0, fmt.Errorf("cancel deletions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Selection picks queued deletions for CancelDeletions and
// ResumeDeletions. Exactly one field is set.
type Selection struct {
	LeakIDs []int64 // the deletions of these leaks' messages
	RegexID int64   // every deletion with a finding of this regex
	All     bool    // every one
}

// target names the selection in the audit log.
func (sel Selection) target() string {
	switch {
	case sel.RegexID != 0:
		return RegexTarget(sel.RegexID)
	case sel.All:
		return "deletions:all"
	}
	ids := make([]string, 0, len(sel.LeakIDs))
	for _, id := range sel.LeakIDs {
		ids = append(ids, LeakTarget(id))
	}
	return strings.Join(ids, ",")
}

// where is the selection as a condition on deletions d, with its arguments.
// For LeakIDs it returns ErrNotFound (wrapped, naming them) when a leak does
// not exist.
func (sel Selection) where(ctx context.Context, tx *txn) (string, []any, error) {
	switch {
	case len(sel.LeakIDs) > 0:
		return ofLeaks(ctx, tx, sel.LeakIDs)
	case sel.RegexID != 0:
		return `d.id IN (SELECT deletion_id FROM leaks WHERE regex_id = ?)`, []any{sel.RegexID}, nil
	case sel.All:
		return `1 = 1`, nil, nil
	}
	return "", nil, errors.New("no deletion selected: give leak ids, a regex id or all")
}

// updateSelected runs update (an UPDATE of deletions AS d, ending in a
// condition) with the selection's condition and returns the rows changed.
func updateSelected(ctx context.Context, tx *txn, sel Selection, update string, args ...any) (int, error) {
	where, more, err := sel.where(ctx, tx)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, update+` AND `+where, append(args, more...)...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// CancelDeletions cancels the selected queued (pending or held) deletions,
// recording when, by whom and why. It returns how many it cancelled; a leak
// whose message has no queued deletion cancels nothing. It returns
// ErrNotFound (wrapped, naming the ids) for leaks that do not exist, and then
// cancels nothing.
func (s *Store) CancelDeletions(ctx context.Context, sel Selection, by, why string) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *txn) (err error) {
		now := s.millis()
		n, err = updateSelected(ctx, tx, sel,
			`UPDATE deletions AS d SET status = 'cancelled', cancelled_at = ?, cancelled_by = ?, cancel_reason = ?, updated_at = ?
			 WHERE d.status IN ('pending', 'held')`, now, by, why, now)
		if err != nil || n == 0 || by == "" {
			return err
		}
		_, err = audit(ctx, tx, now, AuditEntry{Actor: by, Action: "deletions.cancel", Target: sel.target(),
			Detail: fmt.Sprintf("%d cancelled: %s", n, why)}, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cancel deletions: %w", err)
	}
	return n, nil
}

// HoldPending holds every pending deletion with reason (monitor mode holds
// them at start): they stay in the database and are not carried out until
// resumed. It returns how many it held.
func (s *Store) HoldPending(ctx context.Context, reason string) (int, error) {
	now := s.millis()
	res, err := s.db.ExecContext(ctx,
		`UPDATE deletions SET status = 'held', held_at = ?, hold_reason = ?, updated_at = ? WHERE status = 'pending'`,
		now, reason, now)
	if err != nil {
		return 0, fmt.Errorf("hold deletions: %w", classify(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ResumeHeld makes the deletions held for reason pending again when their
// message was seen after youngerThan, and only while an enforcing finding
// still justifies them. It returns how many it resumed and how many stay
// held (older ones wait for an explicit ResumeDeletions).
func (s *Store) ResumeHeld(ctx context.Context, reason string, youngerThan time.Time) (resumed, still int, err error) {
	err = s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		res, err := tx.ExecContext(ctx,
			`UPDATE deletions AS d SET status = 'pending', next_attempt_at = ?, updated_at = ?
			 WHERE d.status = 'held' AND d.hold_reason = ? AND d.created_at >= ? AND `+justified,
			now, now, reason, youngerThan.UnixMilli())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		resumed = int(n)
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM deletions WHERE status = 'held'`).Scan(&still)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("resume held deletions: %w", err)
	}
	return resumed, still, nil
}

// ResumeDeletions makes the selected held deletions pending again. Leak ids
// and All resume monitor mode's and the breaker's alike; a regex id
// resumes the deletions the breaker held (what its rule's trip held), and
// leaves monitor mode's alone: they may be old, and wait for an admin who
// names them. A deletion that no enforcing finding justifies any more is
// not resumed. It returns how many it resumed, and ErrNotFound (wrapped)
// for leaks that do not exist.
func (s *Store) ResumeDeletions(ctx context.Context, sel Selection, by string) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *txn) (err error) {
		now := s.millis()
		held := `d.status = 'held'`
		if sel.RegexID != 0 {
			held += ` AND d.hold_reason != '` + HoldMonitor + `'`
		}
		n, err = updateSelected(ctx, tx, sel,
			`UPDATE deletions AS d SET status = 'pending', next_attempt_at = ?, updated_at = ?
			 WHERE `+held+` AND `+justified, now, now)
		if err != nil || n == 0 || by == "" {
			return err
		}
		_, err = audit(ctx, tx, now, AuditEntry{Actor: by, Action: "deletions.resume", Target: sel.target(),
			Detail: fmt.Sprintf("%d resumed", n)}, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("resume deletions: %w", err)
	}
	return n, nil
}

// ofLeaks is the condition "deletion d is that of one of these leaks", with
// its arguments. It returns ErrNotFound (wrapped, naming them) when some of
// the leaks do not exist.
func ofLeaks(ctx context.Context, tx *txn, ids []int64) (string, []any, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	in := `(` + placeholders(len(ids)) + `)`
	rows, err := tx.QueryContext(ctx, `SELECT id FROM leaks WHERE id IN `+in, args...)
	if err != nil {
		return "", nil, err
	}
	found := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return "", nil, err
		}
		found[id] = true
	}
	rows.Close()
	var missing []string
	for _, id := range ids {
		if !found[id] {
			missing = append(missing, fmt.Sprint(id))
		}
	}
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("leak %s: %w", strings.Join(missing, ", "), ErrNotFound)
	}
	return `d.id IN (SELECT deletion_id FROM leaks WHERE id IN ` + in + `)`, args, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
