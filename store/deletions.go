package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Deletion is a queued chat.delete of one message.
type Deletion struct {
	ID            int64
	Channel       string
	TS            string
	Status        string
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
}

// DueDeletions returns up to limit pending deletions whose next attempt is due
// at now, oldest first.
func (s *Store) DueDeletions(ctx context.Context, now time.Time, limit int) ([]Deletion, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, channel, ts, status, attempts, last_error, next_attempt_at, created_at
		 FROM deletions WHERE status = 'pending' AND next_attempt_at <= ?
		 ORDER BY next_attempt_at, id LIMIT ?`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("list due deletions: %w", classify(err))
	}
	defer rows.Close()
	var out []Deletion
	for rows.Next() {
		var d Deletion
		var next, created int64
		if err := rows.Scan(&d.ID, &d.Channel, &d.TS, &d.Status, &d.Attempts, &d.LastError, &next, &created); err != nil {
			return nil, fmt.Errorf("list due deletions: %w", err)
		}
		d.NextAttemptAt, d.CreatedAt = fromMillis(next), fromMillis(created)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due deletions: %w", classify(err))
	}
	return out, nil
}

// NextDeletionAt returns when the earliest pending deletion is due, and false
// when none is pending.
func (s *Store) NextDeletionAt(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.db.QueryRowContext(ctx,
		`SELECT MIN(next_attempt_at) FROM deletions WHERE status = 'pending'`).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find next deletion: %w", classify(err))
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromMillis(next.Int64), true, nil
}

// MarkDeleted records that the message was deleted, and queues the
// notifications in the same transaction. The outcomes (MarkDeleted,
// RetryDeletion, FailDeletion) follow a ClaimDeletion, which counted the
// attempt.
func (s *Store) MarkDeleted(ctx context.Context, id int64, notes ...OutboxItem) error {
	return s.finishAttempt(ctx, id, StatusDeleted, "", s.now(), notes)
}

// RetryDeletion records a failed attempt that is worth repeating at next.
func (s *Store) RetryDeletion(ctx context.Context, id int64, reason string, next time.Time) error {
	return s.finishAttempt(ctx, id, StatusPending, reason, next, nil)
}

// FailDeletion records an attempt that ended the deletion for good, and
// queues the notifications in the same transaction.
func (s *Store) FailDeletion(ctx context.Context, id int64, reason string, notes ...OutboxItem) error {
	return s.finishAttempt(ctx, id, StatusFailed, reason, s.now(), notes)
}

// ClaimDeletion takes a due pending deletion for one attempt, if an enabled
// rule whose action is delete still justifies it (else it cancels it): it counts the
// attempt and moves the next attempt lease into the future, durably, before
// chat.delete is called. It reports false when the deletion is no longer due
// (another daemon sharing the database took it, or it ended), so that two
// daemons never call chat.delete for one message at once. If the attempt's
// outcome is never recorded (a crash, a write that timed out), the deletion
// is due again once the lease has passed, and the counted attempt tells the
// retry that an earlier call may have deleted the message already (so
// message_not_found then means deleted, not failed).
func (s *Store) ClaimDeletion(ctx context.Context, id int64, now time.Time, lease time.Duration) (bool, error) {
	claimed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The rule for deleting, checked where the deletion is carried out:
		// however the rules changed since it was queued (a rule removed,
		// disabled or switched to monitor by the CLI, the breaker, the cost
		// limit or by hand), a deletion no enabled delete rule justifies any
		// more is cancelled here, not sent.
		res, err := tx.ExecContext(ctx,
			`UPDATE deletions AS d SET next_attempt_at = ?, attempts = attempts + 1, updated_at = ?
			 WHERE d.id = ? AND d.status = 'pending' AND d.next_attempt_at <= ? AND `+justified,
			now.Add(lease).UnixMilli(), s.millis(), id, now.UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			claimed = true
			return nil
		}
		now := s.millis()
		_, err = tx.ExecContext(ctx,
			`UPDATE deletions AS d SET status = 'cancelled', cancelled_at = ?, cancelled_by = 'securechat',
			        cancel_reason = 'no enabled delete rule justifies it any more', updated_at = ?
			 WHERE d.id = ? AND d.status = 'pending' AND NOT `+justified, now, now, id)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim deletion %d: %w", id, err)
	}
	return claimed, nil
}

// DeferDeletion moves a pending deletion's next attempt and takes back the
// attempt its claim counted (used when Slack rate-limits the whole method:
// the call was refused, so it deleted nothing).
func (s *Store) DeferDeletion(ctx context.Context, id int64, next time.Time) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE deletions SET next_attempt_at = ?, attempts = MAX(attempts - 1, 0), updated_at = ? WHERE id = ? AND status = 'pending'`,
		next.UnixMilli(), s.millis(), id)
	if err != nil {
		return fmt.Errorf("defer deletion %d: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("defer deletion %d: %w", id, ErrNotFound)
	}
	return nil
}

func (s *Store) finishAttempt(ctx context.Context, id int64, status, reason string, next time.Time, notes []OutboxItem) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update deletion %d: %w", id, classify(err))
	}
	defer tx.Rollback()
	now := s.millis()
	// A deletion cancelled or held while its call was in flight: the
	// message is gone all the same, so that outcome is recorded; any other
	// outcome leaves the new status alone (ErrNotFound).
	from := `status = 'pending'`
	if status == StatusDeleted {
		from = `status IN ('pending', 'held', 'cancelled')`
	}
	res, err := tx.ExecContext(ctx,
		`UPDATE deletions SET status = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
		 WHERE id = ? AND `+from,
		status, reason, next.UnixMilli(), now, id)
	if err != nil {
		return fmt.Errorf("update deletion %d: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update deletion %d: no pending deletion: %w", id, ErrNotFound)
	}
	if err := enqueue(ctx, tx, now, notes); err != nil {
		return fmt.Errorf("update deletion %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update deletion %d: %w", id, classify(err))
	}
	return nil
}

// DeletionCounts returns how many deletions are in each status.
func (s *Store) DeletionCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM deletions GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count deletions: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int{StatusPending: 0, StatusHeld: 0, StatusCancelled: 0, StatusDeleted: 0, StatusFailed: 0}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count deletions: %w", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count deletions: %w", classify(err))
	}
	return out, nil
}

// Deletion returns one deletion by id, or ErrNotFound.
func (s *Store) Deletion(ctx context.Context, id int64) (Deletion, error) {
	var d Deletion
	var next, created int64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, channel, ts, status, attempts, last_error, next_attempt_at, created_at FROM deletions WHERE id = ?`, id).
		Scan(&d.ID, &d.Channel, &d.TS, &d.Status, &d.Attempts, &d.LastError, &next, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Deletion{}, fmt.Errorf("deletion %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deletion{}, fmt.Errorf("get deletion %d: %w", id, classify(err))
	}
	d.NextAttemptAt, d.CreatedAt = fromMillis(next), fromMillis(created)
	return d, nil
}
