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

// ClaimDeletion takes a due pending deletion for one attempt (see
// ClaimDeletions). It reports false when the deletion is not claimed.
func (s *Store) ClaimDeletion(ctx context.Context, id int64, now time.Time, lease time.Duration) (Claim, bool, error) {
	got, err := s.ClaimDeletions(ctx, []int64{id}, now, lease)
	if len(got) == 1 {
		return got[0], true, err
	}
	return Claim{}, false, err
}

// Claim is a deletion claimed for one attempt.
type Claim struct {
	ID int64
	// Attempts counts the attempts made before this one, read as the claim
	// counted it: more than zero means an earlier call may have deleted
	// the message already.
	Attempts int
	// Token fences the attempt's outcome: RecordOutcomes writes it only
	// while no later claim took the deletion.
	Token string
}

// ClaimDeletions takes due pending deletions for one attempt each, in one
// transaction (one commit for the batch), if an enabled rule whose action is
// delete still justifies them (else it cancels them): it counts each attempt
// and moves its next attempt lease into the future, durably, before
// chat.delete is called. It returns what it claimed, in the order given;
// a deletion that is no longer due (another daemon sharing the database took
// it, or it ended) is left out, so that two daemons never call chat.delete
// for one message at once. If an attempt's outcome is never recorded (a
// crash, a write that timed out), the deletion is due again once the lease
// has passed, and the counted attempt tells the retry that an earlier call
// may have deleted the message already (so message_not_found then means
// deleted, not failed).
func (s *Store) ClaimDeletions(ctx context.Context, ids []int64, now time.Time, lease time.Duration) ([]Claim, error) {
	var claimed []Claim
	token := newToken()
	// Read committed: the conditional UPDATE is the claim; a row another
	// replica is claiming right now is skipped, not waited for.
	err := s.inTxLevel(ctx, sql.LevelReadCommitted, func(tx *txn) error {
		claimed = claimed[:0]
		stamp := s.millis()
		at, err := s.clock(ctx, tx, now)
		if err != nil {
			return err
		}
		free := `d.id = (SELECT id FROM deletions WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?` + tx.d.skipLocked + `)`
		for _, id := range ids {
			// The rule for deleting, checked where the deletion is carried
			// out: however the rules changed since it was queued (a rule
			// removed, disabled or switched to monitor by the CLI, the
			// breaker, the cost limit or by hand), a deletion no enabled
			// delete rule justifies any more is cancelled here, not sent.
			var attempts int
			err := tx.QueryRowContext(ctx,
				`UPDATE deletions AS d SET next_attempt_at = ?, attempts = attempts + 1, claim_token = ?, updated_at = ?
				 WHERE `+free+` AND d.status = 'pending' AND d.next_attempt_at <= ? AND `+justified+`
				 RETURNING attempts`,
				at+lease.Milliseconds(), token, stamp, id, at, at).Scan(&attempts)
			if err == nil {
				claimed = append(claimed, Claim{ID: id, Attempts: attempts - 1, Token: token})
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err = tx.ExecContext(ctx,
				`UPDATE deletions AS d SET status = 'cancelled', cancelled_at = ?, cancelled_by = 'securechat',
				        cancel_reason = 'no enabled delete rule justifies it any more', updated_at = ?
				 WHERE `+free+` AND d.status = 'pending' AND NOT `+justified, stamp, stamp, id, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The commit may have happened with only its answer lost (a
		// connection cut): the token, made here, says which rows are ours.
		if got, ok := s.recoverDeletionClaims(ctx, ids, token); ok {
			return got, nil
		}
		return nil, fmt.Errorf("claim %d deletion(s): %w", len(ids), err)
	}
	return claimed, nil
}

// recoverDeletionClaims reads which of ids carry token, after a claim whose
// answer was lost; ok is false when that cannot be read either.
func (s *Store) recoverDeletionClaims(ctx context.Context, ids []int64, token string) (claimed []Claim, ok bool) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, attempts FROM deletions WHERE claim_token = ? AND status = 'pending'`, token)
	if err != nil {
		return nil, false
	}
	defer rows.Close()
	byID := map[int64]int{}
	for rows.Next() {
		var id int64
		var attempts int
		if rows.Scan(&id, &attempts) != nil {
			return nil, false
		}
		byID[id] = attempts
	}
	if rows.Err() != nil || len(byID) == 0 {
		return nil, false
	}
	for _, id := range ids {
		if a, ok := byID[id]; ok {
			claimed = append(claimed, Claim{ID: id, Attempts: a - 1, Token: token})
		}
	}
	return claimed, true
}

// Outcome is how one claimed chat.delete attempt ended, for RecordOutcomes.
type Outcome struct {
	ID int64
	// Token is the claim's: the outcome is written only if no later claim
	// took the deletion since. "" writes it unfenced (an admin's action).
	Token string
	// Status is what the deletion becomes: StatusDeleted, StatusFailed, or
	// StatusPending (tried again at Next).
	Status string
	// Deferred marks a pending outcome whose call deleted nothing for sure
	// (Slack refused the whole method with a 429, or the call was never
	// made): it takes back the attempt the claim counted.
	Deferred bool
	Reason   string
	Next     time.Time    // for a pending outcome
	Notes    []OutboxItem // queued with the outcome, in the same transaction
}

// MarkDeleted records that the message was deleted, and queues the
// notifications in the same transaction. The outcomes (MarkDeleted,
// RetryDeletion, FailDeletion, DeferDeletion) follow a claim, which counted
// the attempt; RecordOutcomes writes many at once.
func (s *Store) MarkDeleted(ctx context.Context, id int64, notes ...OutboxItem) error {
	return s.recordOne(ctx, Outcome{ID: id, Status: StatusDeleted, Notes: notes})
}

// RetryDeletion records a failed attempt that is worth repeating at next.
func (s *Store) RetryDeletion(ctx context.Context, id int64, reason string, next time.Time) error {
	return s.recordOne(ctx, Outcome{ID: id, Status: StatusPending, Reason: reason, Next: next})
}

// FailDeletion records an attempt that ended the deletion for good, and
// queues the notifications in the same transaction.
func (s *Store) FailDeletion(ctx context.Context, id int64, reason string, notes ...OutboxItem) error {
	return s.recordOne(ctx, Outcome{ID: id, Status: StatusFailed, Reason: reason, Notes: notes})
}

// DeferDeletion moves a pending deletion's next attempt and takes back the
// attempt its claim counted (used when Slack rate-limits the whole method:
// the call was refused, so it deleted nothing).
func (s *Store) DeferDeletion(ctx context.Context, id int64, next time.Time) error {
	return s.recordOne(ctx, Outcome{ID: id, Status: StatusPending, Deferred: true, Next: next})
}

func (s *Store) recordOne(ctx context.Context, o Outcome) error {
	errs, err := s.RecordOutcomes(ctx, []Outcome{o})
	if err != nil {
		return err
	}
	return errs[0]
}

// RecordOutcomes writes the outcomes of many attempts, with the
// notifications they queue, in one transaction: one commit (one fsync) for
// a batch of chat.delete calls. errs[i] is outcomes[i]'s own result:
// ErrNotFound (wrapped) when that deletion is no longer pending (cancelled
// or held while its call was in flight: the new status stands, except that
// a deletion that did happen is recorded as deleted all the same). err is
// the transaction's: when it is not nil, nothing was written.
func (s *Store) RecordOutcomes(ctx context.Context, outcomes []Outcome) (errs []error, err error) {
	errs = make([]error, len(outcomes))
	err = s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		for i, o := range outcomes {
			errs[i] = nil
			next := now
			if !o.Next.IsZero() {
				next = o.Next.UnixMilli()
			}
			var res sql.Result
			var err error
			fence, fenceArgs := "", []any{}
			if o.Token != "" {
				fence, fenceArgs = ` AND claim_token = ?`, []any{o.Token}
			}
			if o.Deferred {
				res, err = tx.ExecContext(ctx,
					`UPDATE deletions SET next_attempt_at = ?, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ? WHERE id = ? AND status = 'pending'`+fence,
					append([]any{next, now, o.ID}, fenceArgs...)...)
			} else {
				from := `status = 'pending'`
				if o.Status == StatusDeleted {
					from = `status IN ('pending', 'held', 'cancelled')`
				}
				res, err = tx.ExecContext(ctx,
					`UPDATE deletions SET status = ?, last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ? AND `+from+fence,
					append([]any{o.Status, o.Reason, next, now, o.ID}, fenceArgs...)...)
			}
			if err != nil {
				return fmt.Errorf("update deletion %d: %w", o.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var other string
				err := tx.QueryRowContext(ctx, `SELECT claim_token FROM deletions WHERE id = ?`, o.ID).Scan(&other)
				if err == nil && o.Token != "" && other != o.Token {
					errs[i] = fmt.Errorf("update deletion %d: %w", o.ID, ErrClaimLost)
				} else {
					errs[i] = fmt.Errorf("update deletion %d: no pending deletion: %w", o.ID, ErrNotFound)
				}
				continue
			}
			if err := enqueue(ctx, tx, now, o.Notes); err != nil {
				return fmt.Errorf("update deletion %d: %w", o.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d deletion outcome(s): %w", len(outcomes), err)
	}
	return errs, nil
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

// ShiftDueTimes moves back by `by` the next attempt of every pending
// deletion and notification due after now: the system clock stepped back
// by `by` (an NTP correction, a VM restored), and due times written before
// the step would otherwise wait the step out. It returns how many it moved.
func (s *Store) ShiftDueTimes(ctx context.Context, by time.Duration, now time.Time) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *txn) error {
		n = 0
		for _, table := range []string{"deletions", "outbox"} {
			res, err := tx.ExecContext(ctx,
				`UPDATE `+table+` SET next_attempt_at = CASE WHEN next_attempt_at - ? > ? THEN next_attempt_at - ? ELSE ? END
				 WHERE status = 'pending' AND next_attempt_at > ?`,
				by.Milliseconds(), now.UnixMilli(), by.Milliseconds(), now.UnixMilli(), now.UnixMilli())
			if err != nil {
				return err
			}
			c, _ := res.RowsAffected()
			n += int(c)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("move due times back after a clock step: %w", err)
	}
	return n, nil
}
