package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Presence is what the daemons on this database last said about their
// connection to Slack.
type Presence struct {
	// LastConnected is when a daemon last had a Socket Mode connection
	// (zero when none ever had one).
	LastConnected time.Time
	// Clean is true when the daemon that wrote LastConnected stopped
	// cleanly: every event it saw was handled, so its watermarks are exact.
	Clean bool
}

// Presence reads the last connection time of any daemon on the database
// (each replica keeps its own) and whether the daemon that had it stopped
// cleanly then.
func (s *Store) Presence(ctx context.Context) (Presence, error) {
	return s.presence(ctx, "")
}

// OthersPresence is Presence over the other replicas (not this store's
// instance): when one of them was last connected.
func (s *Store) OthersPresence(ctx context.Context) (Presence, error) {
	return s.presence(ctx, s.instanceID())
}

func (s *Store) presence(ctx context.Context, except string) (Presence, error) {
	var p Presence
	var last int64
	err := s.db.QueryRowContext(ctx,
		`SELECT last_connected, clean FROM instances WHERE last_connected > 0 AND id != ?
		 ORDER BY last_connected DESC, clean DESC LIMIT 1`, except).Scan(&last, &p.Clean)
	if isNoRows(err) {
		return Presence{}, nil
	}
	if err != nil {
		return p, fmt.Errorf("read the daemons' last connection: %w", classify(err))
	}
	p.LastConnected = fromMillis(last)
	return p, nil
}

// SaveProgress stores, in one transaction, the newest handled message ts of
// each conversation in marks (a stored watermark only moves forward), and,
// when connected is not zero, the last connection time with the clean flag.
func (s *Store) SaveProgress(ctx context.Context, marks map[string]string, connected time.Time, clean bool) error {
	err := s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		for ch, ts := range marks {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO watermarks (channel, ts, updated_at) VALUES (?, ?, ?)
				 ON CONFLICT (channel) DO UPDATE SET ts = CASE WHEN excluded.ts > watermarks.ts THEN excluded.ts ELSE watermarks.ts END, updated_at = excluded.updated_at`,
				ch, ts, now); err != nil {
				return err
			}
		}
		if connected.IsZero() {
			return nil
		}
		// This daemon's own row: replicas do not overwrite each other's.
		_, err := tx.ExecContext(ctx,
			`INSERT INTO instances (id, started_at, heartbeat_at, last_connected, clean) VALUES (?, ?, ?, ?, ?)
			 ON CONFLICT (id) DO UPDATE SET last_connected = excluded.last_connected, clean = excluded.clean,
			        heartbeat_at = excluded.heartbeat_at`,
			s.instanceID(), now, now, connected.UnixMilli(), clean)
		return err
	})
	if err != nil {
		return fmt.Errorf("save the catch-up watermarks: %w", err)
	}
	return nil
}

// Watermarks returns the newest handled message ts of every conversation.
func (s *Store) Watermarks(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT channel, ts FROM watermarks`)
	if err != nil {
		return nil, fmt.Errorf("read the catch-up watermarks: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var ch, ts string
		if err := rows.Scan(&ch, &ts); err != nil {
			return nil, fmt.Errorf("read the catch-up watermarks: %w", classify(err))
		}
		out[ch] = ts
	}
	return out, classify(rows.Err())
}

// Name kinds.
const (
	NameConversation = "conversation"
	NameUser         = "user"
)

// SetNames caches names (id → name) of one kind.
func (s *Store) SetNames(ctx context.Context, kind string, names map[string]string) error {
	if len(names) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		for id, name := range names {
			if id == "" || name == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO names (kind, id, name, updated_at) VALUES (?, ?, ?, ?)
				 ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at`,
				kind, id, name, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache %s names: %w", kind, err)
	}
	return nil
}

// Names returns the cached names of one kind (id → name).
func (s *Store) Names(ctx context.Context, kind string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name FROM names WHERE kind = ?`, kind)
	if err != nil {
		return nil, fmt.Errorf("read cached %s names: %w", kind, classify(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("read cached %s names: %w", kind, classify(err))
		}
		out[id] = name
	}
	return out, classify(rows.Err())
}

// IDByName returns the id cached for a name of one kind, or ErrNotFound.
func (s *Store) IDByName(ctx context.Context, kind, name string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM names WHERE kind = ? AND name = ? ORDER BY updated_at DESC LIMIT 1`,
		kind, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("look up the %s named %q: %w", kind, name, classify(err))
	}
	return id, nil
}

// Enqueue queues notifications on their own (the catch-up's outage alert).
func (s *Store) Enqueue(ctx context.Context, items ...OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *txn) error { return enqueue(ctx, tx, s.millis(), items) })
	if err != nil {
		return fmt.Errorf("queue notifications: %w", err)
	}
	return nil
}

// Unnamed returns up to limit conversation and user ids that leaks name and
// the cache has no name for, or one cached before staleBefore, for the
// daemon to look up.
func (s *Store) Unnamed(ctx context.Context, limit int, staleBefore time.Time) (conversations, users []string, err error) {
	q := func(kind, col string) ([]string, error) {
		rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT l.`+col+` FROM leaks l
			WHERE l.`+col+` != '' AND NOT EXISTS (SELECT 1 FROM names n WHERE n.kind = ? AND n.id = l.`+col+` AND n.updated_at >= ?) LIMIT ?`,
			kind, staleBefore.UnixMilli(), limit)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			out = append(out, id)
		}
		return out, rows.Err()
	}
	if conversations, err = q(NameConversation, "channel"); err != nil {
		return nil, nil, fmt.Errorf("find unnamed conversations: %w", classify(err))
	}
	if users, err = q(NameUser, "user_id"); err != nil {
		return nil, nil, fmt.Errorf("find unnamed users: %w", classify(err))
	}
	return conversations, users, nil
}

// CatchupWindow is a catch-up still to be read: what was posted while the
// daemon had no connection. It stays in the database until every
// conversation in it has been read down to its lower bound, so that a
// stop, a kill or a failed page resumes it.
type CatchupWindow struct {
	ID int64
	// Since is when the connection was lost (the last run's last
	// connection, at start).
	Since time.Time
	// Exact is true when the watermarks were exact (a clean stop): the
	// window starts right after them, with no overlap.
	Exact bool
	// FloorTS bounds the window: nothing older is read (the look-back).
	FloorTS string
	// Why is start or reconnect.
	Why string
	// Alerted is true once the outage alert (an outage longer than the
	// look-back) was queued.
	Alerted   bool
	CreatedAt time.Time
	// Progress holds each conversation's bounds and progress; a
	// conversation without an entry is read from the window's default
	// lower bound.
	Progress map[string]CatchupProgress
}

// CatchupProgress is one conversation's part of a catch-up window.
type CatchupProgress struct {
	// Oldest is the lower bound (read after this ts). It does not move
	// while the window is open, whatever live events do meanwhile.
	Oldest string
	// Latest is how far down the pages have been read (exclusive); ""
	// means from the top.
	Latest string
	Done   bool
}

// OpenCatchupWindow stores a new catch-up window with the lower bounds of
// the conversations in w.Progress, in one transaction, and returns its id.
func (s *Store) OpenCatchupWindow(ctx context.Context, w CatchupWindow) (int64, error) {
	var id int64
	err := s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO catchup_windows (since, exact, floor_ts, why, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			w.Since.UnixMilli(), w.Exact, w.FloorTS, w.Why, now).Scan(&id); err != nil {
			return err
		}
		for ch, p := range w.Progress {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO catchup_progress (window_id, channel, oldest, latest, done) VALUES (?, ?, ?, ?, ?)`,
				id, ch, p.Oldest, p.Latest, p.Done); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store the catch-up window: %w", err)
	}
	return id, nil
}

// CatchupWindows returns the open catch-up windows, oldest first.
func (s *Store) CatchupWindows(ctx context.Context) ([]CatchupWindow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, since, exact, floor_ts, why, alerted, created_at FROM catchup_windows ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read the catch-up windows: %w", classify(err))
	}
	var out []CatchupWindow
	for rows.Next() {
		var w CatchupWindow
		var since, created int64
		if err := rows.Scan(&w.ID, &since, &w.Exact, &w.FloorTS, &w.Why, &w.Alerted, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the catch-up windows: %w", classify(err))
		}
		w.Since, w.CreatedAt = fromMillis(since), fromMillis(created)
		w.Progress = map[string]CatchupProgress{}
		out = append(out, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the catch-up windows: %w", classify(err))
	}
	byID := make(map[int64]*CatchupWindow, len(out))
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	rows, err = s.db.QueryContext(ctx, `SELECT window_id, channel, oldest, latest, done FROM catchup_progress`)
	if err != nil {
		return nil, fmt.Errorf("read the catch-up windows: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ch string
		var p CatchupProgress
		if err := rows.Scan(&id, &ch, &p.Oldest, &p.Latest, &p.Done); err != nil {
			return nil, fmt.Errorf("read the catch-up windows: %w", classify(err))
		}
		if w := byID[id]; w != nil { // a window opened since the first query is read next time
			w.Progress[ch] = p
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the catch-up windows: %w", classify(err))
	}
	return out, nil
}

// SaveCatchupProgress stores how far one conversation of a window has
// been read. Its lower bound is set when the conversation's row is first
// written and never changed after. A window closed meanwhile (another
// daemon on the database read it to the end) takes nothing.
func (s *Store) SaveCatchupProgress(ctx context.Context, windowID int64, channel string, p CatchupProgress) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO catchup_progress (window_id, channel, oldest, latest, done)
		 SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM catchup_windows WHERE id = ?)
		 ON CONFLICT (window_id, channel) DO UPDATE SET latest = excluded.latest, done = excluded.done`,
		windowID, channel, p.Oldest, p.Latest, p.Done, windowID)
	if err != nil {
		return fmt.Errorf("save the catch-up progress of %s: %w", channel, classify(err))
	}
	return nil
}

// CloseCatchupWindow removes a window every conversation of which was read.
func (s *Store) CloseCatchupWindow(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM catchup_windows WHERE id = ?`, id); err != nil {
		return fmt.Errorf("close the catch-up window: %w", classify(err))
	}
	return nil
}

// AlertCatchupWindow queues a window's outage alert and marks it alerted,
// in one transaction: the alert is queued once per outage, across restarts.
// It reports false, queuing nothing, when the window was alerted already.
func (s *Store) AlertCatchupWindow(ctx context.Context, id int64, notes ...OutboxItem) (bool, error) {
	var done bool
	err := s.inTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE catchup_windows SET alerted = 1 WHERE id = ? AND alerted = 0`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		done = true
		return enqueue(ctx, tx, s.millis(), notes)
	})
	if err != nil {
		return false, fmt.Errorf("queue the outage alert: %w", err)
	}
	return done, nil
}
