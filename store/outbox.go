package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Outbox kinds.
const (
	KindAuthor  = "author"  // a notice to the member whose message leaked
	KindAlert   = "alert"   // a line in the admins' alert channel
	KindWebhook = "webhook" // a JSON POST to the configured webhook
)

// Outbox statuses.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// OutboxItem is a notification to send. Payload is JSON and holds masked
// data only.
type OutboxItem struct {
	ID            int64
	Kind          string
	Payload       string
	Status        string
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
	// ClaimToken is the caller's note of its claim (ClaimOutbox), for
	// FinishOutbox; the store does not fill it in.
	ClaimToken string
}

func enqueue(ctx context.Context, tx *txn, now int64, items []OutboxItem) error {
	for _, it := range items {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO outbox (kind, payload, status, next_attempt_at, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)`,
			it.Kind, it.Payload, now, now, now); err != nil {
			return fmt.Errorf("queue %s notification: %w", it.Kind, classify(err))
		}
	}
	return nil
}

// DueOutbox returns up to limit pending notifications due at now, oldest first.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, kind, payload, status, attempts, last_error, next_attempt_at, created_at
		 FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
		now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("list due notifications: %w", classify(err))
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var next, created int64
		if err := rows.Scan(&it.ID, &it.Kind, &it.Payload, &it.Status, &it.Attempts, &it.LastError, &next, &created); err != nil {
			return nil, fmt.Errorf("list due notifications: %w", err)
		}
		it.NextAttemptAt, it.CreatedAt = fromMillis(next), fromMillis(created)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due notifications: %w", classify(err))
	}
	return out, nil
}

// NextOutboxAt returns when the earliest pending notification is due.
func (s *Store) NextOutboxAt(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'`).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("find next notification: %w", classify(err))
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromMillis(next.Int64), true, nil
}

// ClaimOutbox takes a due notification for one send: it counts the attempt
// and moves the next attempt lease into the future, durably, before the
// send, and returns the claim's token, which the outcome must present. It
// returns "" when the item is no longer due (another daemon on the
// database took it, or it ended), so one item is sent once however many
// daemons share the database. If the outcome is never recorded (a crash, a
// write that fails), the item is due again only once the lease has passed:
// a send whose outcome was lost is repeated at most once per lease, never
// in a tight loop, and the attempt cap still applies.
func (s *Store) ClaimOutbox(ctx context.Context, id int64, now time.Time, lease time.Duration) (token string, err error) {
	token = newToken()
	err = s.inTxLevel(ctx, sql.LevelReadCommitted, func(tx *txn) error {
		at, err := s.clock(ctx, tx, now)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1, claim_token = ?, updated_at = ?
			 WHERE id = (SELECT id FROM outbox WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?`+tx.d.skipLocked+`)
			   AND status = 'pending' AND next_attempt_at <= ?`,
			at+lease.Milliseconds(), token, s.millis(), id, at, at)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			token = ""
		}
		return nil
	})
	if err != nil {
		// The commit may have happened with only its answer lost (a
		// connection cut): the token, made here, says whether it did.
		var got string
		if s.db.QueryRowContext(ctx, `SELECT claim_token FROM outbox WHERE id = ? AND status = 'pending'`, id).Scan(&got) == nil && got == token {
			return token, nil
		}
		return "", fmt.Errorf("claim notification %d: %w", id, err)
	}
	return token, nil
}

// FinishOutbox records the outcome of the send its claim (token) made:
// status sent or failed ends it, pending retries it at next. (ClaimOutbox
// counted the attempt.) It returns ErrClaimLost (wrapped) when another
// daemon claimed the item since (this claim's lease ran out), and
// ErrNotFound when it is no longer pending.
func (s *Store) FinishOutbox(ctx context.Context, id int64, token, status, reason string, next time.Time) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
		 WHERE id = ? AND status = 'pending' AND claim_token = ?`, status, reason, next.UnixMilli(), s.millis(), id, token)
	if err != nil {
		return fmt.Errorf("update notification %d: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var other string
		err := s.db.QueryRowContext(ctx, `SELECT claim_token FROM outbox WHERE id = ? AND status = 'pending'`, id).Scan(&other)
		if err == nil && other != token {
			return fmt.Errorf("update notification %d: %w", id, ErrClaimLost)
		}
		return fmt.Errorf("update notification %d: %w", id, ErrNotFound)
	}
	return nil
}

// OutboxCounts returns how many notifications of each kind are in each status.
func (s *Store) OutboxCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, status, COUNT(*) FROM outbox GROUP BY kind, status`)
	if err != nil {
		return nil, fmt.Errorf("count notifications: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var kind, status string
		var n int
		if err := rows.Scan(&kind, &status, &n); err != nil {
			return nil, fmt.Errorf("count notifications: %w", err)
		}
		if out[kind] == nil {
			out[kind] = map[string]int{}
		}
		out[kind][status] = n
	}
	return out, rows.Err()
}

// PruneOutbox deletes notifications sent before the given time and returns
// how many it deleted. Pending and failed ones are kept.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE status = 'sent' AND updated_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune notifications: %w", classify(err))
	}
	return res.RowsAffected()
}
