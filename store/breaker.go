package store

import (
	"context"
	"fmt"
	"time"
)

// ScanBucket is the width of a scan_counts bucket.
const ScanBucket = 10 * time.Second

// AddScanned adds n scanned messages to daemon's bucket at t, and prunes
// buckets older than keep.
func (s *Store) AddScanned(ctx context.Context, daemon string, t time.Time, n int, keep time.Duration) error {
	bucket := t.Truncate(ScanBucket).UnixMilli()
	return s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO scan_counts (bucket, daemon, scanned) VALUES (?, ?, ?)
			 ON CONFLICT (bucket, daemon) DO UPDATE SET scanned = scanned + excluded.scanned`, bucket, daemon, n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM scan_counts WHERE bucket < ?`, t.Add(-keep).UnixMilli())
		return err
	})
}

// RuleLoad is what the breaker weighs for one rule over a window.
type RuleLoad struct {
	Deletions int // messages whose deletion a finding of the rule queued
	Scanned   int // messages scanned by every daemon on the database
}

// RuleLoad counts, since since, the messages a regex's delete findings
// queued for deletion and the messages scanned by all daemons.
func (s *Store) RuleLoad(ctx context.Context, regexID int64, since time.Time) (RuleLoad, error) {
	var l RuleLoad
	err := s.db.QueryRowContext(ctx, ruleLoadQuery,
		regexID, since.UnixMilli(), since.Truncate(ScanBucket).UnixMilli()).Scan(&l.Deletions, &l.Scanned)
	if err != nil {
		return l, fmt.Errorf("weigh regex %d: %w", regexID, classify(err))
	}
	return l, nil
}

// ruleLoadQuery counts a rule's deletions queued by live findings since a
// time, and the messages every daemon scanned since (see RuleLoad).
const ruleLoadQuery = `SELECT (SELECT COUNT(DISTINCT deletion_id) FROM leaks WHERE regex_id = ? AND action = 'delete' AND deletion_id IS NOT NULL AND origin = 'live' AND detected_at >= ?),
	(SELECT COALESCE(SUM(scanned), 0) FROM scan_counts WHERE bucket >= ?)`

// tripRule switches a regex to monitor with the breaker's reason, holds
// the queued deletions no other enforcing finding justifies, and queues
// the notes, in tx (the recording transaction: see RecordLeakWeighed). It returns how many it held, or -1, changing nothing,
// when the rule is not enforcing any more.
func tripRule(ctx context.Context, tx *txn, now int64, regexID int64, reason string, notes []OutboxItem) (int, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE regexes SET action = 'monitor', tripped_reason = ?, updated_at = ? WHERE id = ? AND action = 'delete'`,
		reason, now, regexID)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return -1, nil
	}
	r, err := tx.ExecContext(ctx,
		`UPDATE deletions AS d SET status = 'held', held_at = ?, hold_reason = ?, updated_at = ?
		 WHERE d.status = 'pending' AND NOT `+justified,
		now, fmt.Sprintf("breaker: regex %d", regexID), now)
	if err != nil {
		return 0, err
	}
	h, _ := r.RowsAffected()
	return int(h), enqueue(ctx, tx, now, notes)
}
