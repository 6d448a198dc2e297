package store

import (
	"context"
	"fmt"
	"time"
)

// WithInstance names the daemon (replica) that uses the store: its
// connection times and clean stop are kept under this name, beside the
// other replicas' (SaveProgress, Presence).
func WithInstance(id string) Option {
	return func(s *Store) { s.instance = id }
}

// Instance is one daemon's row: what it last said about itself.
type Instance struct {
	ID            string
	Host          string
	PID           int
	Started       time.Time
	Heartbeat     time.Time
	Connections   int
	LastConnected time.Time
	Clean         bool
	Stopped       time.Time
}

// Beat records that this store's instance is alive, with how many Socket
// Mode connections it has up.
func (s *Store) Beat(ctx context.Context, host string, pid, connections int) error {
	now := s.millis()
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO instances (id, host, pid, started_at, heartbeat_at, connections) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, connections = excluded.connections,
		        host = excluded.host, pid = excluded.pid, stopped_at = 0`,
		s.instanceID(), host, pid, now, now, connections)
	if err != nil {
		return fmt.Errorf("record this daemon's heartbeat: %w", classify(err))
	}
	// Daemons gone for a week are forgotten (each start is a new row),
	// except the one with the newest connection: the presence the next
	// start catches up from.
	if _, err := s.db.ExecContext(ctx,
		`DELETE FROM instances WHERE heartbeat_at < ? AND id != ?
		   AND last_connected < (SELECT MAX(last_connected) FROM instances)`,
		now-instanceRetention.Milliseconds(), s.instanceID()); err != nil {
		return fmt.Errorf("forget daemons gone for a week: %w", classify(err))
	}
	return nil
}

// instanceRetention is how long a daemon's row outlives its last heartbeat.
const instanceRetention = 7 * 24 * time.Hour

// StopInstance records that this store's daemon stopped (cleanly): it is
// no longer counted as running.
func (s *Store) StopInstance(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE instances SET stopped_at = ?, connections = 0 WHERE id = ?`, s.millis(), s.instanceID()); err != nil {
		return fmt.Errorf("record this daemon's stop: %w", classify(err))
	}
	return nil
}

// Running returns the daemons that look alive: a heartbeat within within
// and no stop recorded since.
func (s *Store) Running(ctx context.Context, within time.Duration) ([]Instance, error) {
	all, err := s.Instances(ctx)
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, in := range all {
		if in.Stopped.IsZero() && s.now().Sub(in.Heartbeat) < within {
			out = append(out, in)
		}
	}
	return out, nil
}

// Instances lists the daemons that used the database, the most recent
// heartbeat first.
func (s *Store) Instances(ctx context.Context) ([]Instance, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, host, pid, started_at, heartbeat_at, connections, last_connected, clean, stopped_at
		 FROM instances ORDER BY heartbeat_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list daemons: %w", classify(err))
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		var in Instance
		var started, beat, last, stopped int64
		if err := rows.Scan(&in.ID, &in.Host, &in.PID, &started, &beat, &in.Connections, &last, &in.Clean, &stopped); err != nil {
			return nil, fmt.Errorf("list daemons: %w", err)
		}
		in.Started, in.Heartbeat = fromMillis(started), fromMillis(beat)
		if last > 0 {
			in.LastConnected = fromMillis(last)
		}
		if stopped > 0 {
			in.Stopped = fromMillis(stopped)
		}
		out = append(out, in)
	}
	return out, classify(rows.Err())
}

// instanceID is the row this store writes its presence to.
func (s *Store) instanceID() string {
	if s.instance == "" {
		return "default"
	}
	return s.instance
}

// AcquireLease takes or renews the named lease for holder until ttl from
// the database's clock (on PostgreSQL; the store's clock on SQLite), if it
// is free, expired, already holder's, or held by dead (a holder the caller
// knows is gone: "" for none). It reports whether holder holds it now. One
// statement decides, so two replicas never both hold it.
func (s *Store) AcquireLease(ctx context.Context, name, holder, dead string, ttl time.Duration) (bool, error) {
	var held bool
	err := s.inTxLevel(ctx, 0, func(tx *txn) error {
		held = false
		now, err := s.clock(ctx, tx, s.now())
		if err != nil {
			return err
		}
		var got string
		err = tx.QueryRowContext(ctx,
			`INSERT INTO leases (name, holder, term, expires_at) VALUES (?, ?, 1, ?)
			 ON CONFLICT (name) DO UPDATE SET
			        term = CASE WHEN leases.holder = excluded.holder THEN leases.term ELSE leases.term + 1 END,
			        holder = excluded.holder, expires_at = excluded.expires_at
			 WHERE leases.holder = excluded.holder OR leases.expires_at < ? OR (leases.holder = ? AND ? != '')
			 RETURNING holder`, name, holder, now+ttl.Milliseconds(), now, dead, dead).Scan(&got)
		if err != nil && !isNoRows(err) {
			return err
		}
		held = got == holder
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("take the %s lease: %w", name, err)
	}
	return held, nil
}

// LeaseHolder returns who holds the named lease ("" when nobody does).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var h string
	err := s.db.QueryRowContext(ctx, `SELECT holder FROM leases WHERE name = ?`, name).Scan(&h)
	if isNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the %s lease: %w", name, classify(err))
	}
	return h, nil
}

// ReleaseLease gives the named lease up, if holder holds it, so that
// another replica takes it at once rather than after it expires.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("give up the %s lease: %w", name, classify(err))
	}
	return nil
}
