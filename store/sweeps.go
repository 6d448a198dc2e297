package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Sweep is one history sweep (securechat scan).
type Sweep struct {
	ID       int64
	Key      string // what was asked
	SinceTS  string
	UntilTS  string
	Started  time.Time
	Finished time.Time // zero while not finished
	Messages int
	Findings int
}

// SweepCursor is how far a sweep has read one conversation.
type SweepCursor struct {
	Channel  string
	Latest   string // read down to this ts (exclusive); "" = not started
	Done     bool
	Messages int
	Findings int
}

// StartSweep returns the sweep stored under key, or creates it with the
// window given. again restarts a finished (or unfinished) one from the
// beginning. resumed is true when an unfinished sweep continues.
func (s *Store) StartSweep(ctx context.Context, key, sinceTS, untilTS string, again bool) (sw Sweep, resumed bool, err error) {
	err = s.inTx(ctx, func(tx *txn) error {
		sw, resumed = Sweep{}, false // run again from the start when PostgreSQL retries it
		var fin sql.NullInt64
		var started int64
		e := tx.QueryRowContext(ctx, `SELECT id, since_ts, until_ts, started_at, finished_at, messages, findings FROM sweeps WHERE key = ?`, key).
			Scan(&sw.ID, &sw.SinceTS, &sw.UntilTS, &started, &fin, &sw.Messages, &sw.Findings)
		switch {
		case errors.Is(e, sql.ErrNoRows):
		case e != nil:
			return e
		case again:
			if _, err := tx.ExecContext(ctx, `DELETE FROM sweeps WHERE id = ?`, sw.ID); err != nil {
				return err
			}
		default:
			sw.Key, sw.Started = key, fromMillis(started)
			if fin.Valid {
				sw.Finished = fromMillis(fin.Int64)
			} else {
				resumed = true
			}
			return nil
		}
		now := s.millis()
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO sweeps (key, since_ts, until_ts, started_at) VALUES (?, ?, ?, ?) RETURNING id`,
			key, sinceTS, untilTS, now).Scan(&id); err != nil {
			return err
		}
		sw = Sweep{ID: id, Key: key, SinceTS: sinceTS, UntilTS: untilTS, Started: fromMillis(now)}
		return nil
	})
	if err != nil {
		return Sweep{}, false, fmt.Errorf("start the sweep: %w", err)
	}
	return sw, resumed, nil
}

// SweepCursors returns the per-conversation progress of a sweep.
func (s *Store) SweepCursors(ctx context.Context, id int64) (map[string]SweepCursor, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT channel, latest, done, messages, findings FROM sweep_cursors WHERE sweep_id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("read the sweep's progress: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]SweepCursor{}
	for rows.Next() {
		var c SweepCursor
		if err := rows.Scan(&c.Channel, &c.Latest, &c.Done, &c.Messages, &c.Findings); err != nil {
			return nil, fmt.Errorf("read the sweep's progress: %w", classify(err))
		}
		out[c.Channel] = c
	}
	return out, classify(rows.Err())
}

// SaveSweepCursor stores a conversation's progress and adds messages and
// findings to the sweep's totals, in one transaction.
func (s *Store) SaveSweepCursor(ctx context.Context, id int64, c SweepCursor, addMessages, addFindings int) error {
	err := s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO sweep_cursors (sweep_id, channel, latest, done, messages, findings) VALUES (?, ?, ?, ?, ?, ?)
			 ON CONFLICT (sweep_id, channel) DO UPDATE SET latest = excluded.latest, done = excluded.done,
			   messages = excluded.messages, findings = excluded.findings`,
			id, c.Channel, c.Latest, c.Done, c.Messages, c.Findings); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE sweeps SET messages = messages + ?, findings = findings + ? WHERE id = ?`,
			addMessages, addFindings, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("save the sweep's progress in %s: %w", c.Channel, err)
	}
	return nil
}

// FinishSweep marks a sweep finished and queues its summary notices.
func (s *Store) FinishSweep(ctx context.Context, id int64, notes ...OutboxItem) error {
	err := s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		if _, err := tx.ExecContext(ctx, `UPDATE sweeps SET finished_at = ? WHERE id = ?`, now, id); err != nil {
			return err
		}
		return enqueue(ctx, tx, now, notes)
	})
	if err != nil {
		return fmt.Errorf("finish the sweep: %w", err)
	}
	return nil
}

// enforceable selects the messages a history sweep recorded with an
// enforcing finding (see enforcing) that have no deletion yet; messages
// Slack does not let securechat delete (another member's direct or group
// direct message, decided when the leak was recorded) are left out.
const enforceable = `SELECT DISTINCT l.channel, l.ts FROM leaks l JOIN regexes r ON r.id = l.regex_id
	WHERE l.origin = 'history' AND l.deletion_id IS NULL AND l.deletable = 1 AND ` + enforcing + `
	  AND NOT EXISTS (SELECT 1 FROM deletions d WHERE d.channel = l.channel AND d.ts = l.ts)`

// EnforceHistory queues the deletion of every message enforceable selects,
// without reading Slack again; a running daemon carries them out through
// its deletion path and limits (the rule is checked again when each is
// claimed). With dryRun it only counts them. It returns how many deletions
// it queued (or would).
func (s *Store) EnforceHistory(ctx context.Context, dryRun bool) (int, error) {
	if dryRun {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+enforceable+`) AS e`).Scan(&n); err != nil {
			return 0, fmt.Errorf("count the deletions history findings would queue: %w", classify(err))
		}
		return n, nil
	}
	n := 0
	err := s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		rows, err := tx.QueryContext(ctx, enforceable)
		if err != nil {
			return err
		}
		type msg struct{ ch, ts string }
		var ms []msg
		for rows.Next() {
			var m msg
			if err := rows.Scan(&m.ch, &m.ts); err != nil {
				rows.Close()
				return err
			}
			ms = append(ms, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range ms {
			_, created, _, err := queueDeletion(ctx, tx, now, m.ch, m.ts)
			if err != nil {
				return err
			}
			if created {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue the deletions of history findings: %w", err)
	}
	return n, nil
}
