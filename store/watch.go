package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Hints Watch passes on.
const (
	// HintRules: a rule or an allowlisted value changed.
	HintRules = "securechat_rules"
	// HintWork: a deletion or a notification was queued.
	HintWork = "securechat_work"
)

// Watch calls hint with HintRules or HintWork when another process changes
// the rules or queues work, until ctx ends. On PostgreSQL it LISTENs on a
// connection of its own (reconnecting after a failure); elsewhere it
// returns at once. A hint only saves waiting for the next poll: what it
// says is also found by polling, so a lost one (a connection that dropped,
// a pooler that does not pass NOTIFY on) delays, never misses.
func (s *Store) Watch(ctx context.Context, hint func(string)) error {
	if !s.db.d.postgres() {
		return nil
	}
	for {
		err := s.listen(ctx, hint)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		_ = err // polling covers the gap; the next try reconnects
	}
}

func (s *Store) listen(ctx context.Context, hint func(string)) error {
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pg := dc.(*stdlib.Conn).Conn()
		var schema string
		if err := pg.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		for _, ch := range []string{HintRules, HintWork} {
			if _, err := pg.Exec(ctx, "LISTEN "+ch); err != nil {
				return err
			}
		}
		// The connection goes back to the pool afterwards: never with
		// LISTEN left on it.
		defer pg.Exec(context.WithoutCancel(ctx), "UNLISTEN *")
		for {
			n, err := pg.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("wait for a hint: %w: %w", err, driver.ErrBadConn)
			}
			if n.Payload == schema { // another securechat database on the server is not ours
				hint(n.Channel)
			}
		}
	})
}
