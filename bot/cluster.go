package bot

import (
	"context"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/socket"
	"github.com/securechat/securechat/store"
)

// leaderLease is the lease whose holder runs the singleton jobs: reading
// catch-up windows, ending rule trials, pruning the outbox and refreshing
// names. Every replica handles live events and deletions.
const leaderLease = "leader"

// clusterStore is what the cluster needs of the store.
type clusterStore interface {
	AcquireLease(ctx context.Context, name, holder, dead string, ttl time.Duration) (bool, error)
	LeaseHolder(ctx context.Context, name string) (string, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	Beat(ctx context.Context, host string, pid, connections int) error
	Instances(ctx context.Context) ([]store.Instance, error)
	StopInstance(ctx context.Context) error
}

// cluster keeps this daemon's heartbeat and its claim on the leader lease.
// A daemon alone on its database is its leader; of replicas, one is, and
// when it dies another takes over within LeaseTTL plus one renewal.
type cluster struct {
	store  clusterStore
	id     string
	ttl    time.Duration
	conn   *socket.State
	log    zerolog.Logger
	leader atomic.Bool
	live   atomic.Int32 // replicas with a recent heartbeat and a connection up
	// becameLeader is called when this daemon takes the lease.
	becameLeader func()
}

// isLeader reports whether this daemon holds the leader lease.
func (c *cluster) isLeader() bool { return c.leader.Load() }

// replicas is how many daemons had a connection up at the last heartbeat
// (at least this one).
func (c *cluster) replicas() int { return max(int(c.live.Load()), 1) }

// tick renews the heartbeat and the lease once.
func (c *cluster) tick(ctx context.Context) {
	host, _ := os.Hostname()
	if err := c.store.Beat(ctx, host, os.Getpid(), c.conn.Count()); err != nil && ctx.Err() == nil {
		c.log.Warn().Err(err).Msg("could not record this daemon's heartbeat")
	}
	dead := ""
	if !c.leader.Load() {
		// A leader that died on this host (killed, crashed: a restart under
		// systemd) is known to be gone: no need to wait out its lease.
		if h, err := c.store.LeaseHolder(ctx, leaderLease); err == nil && h != c.id && goneHere(h) {
			dead = h
		}
	}
	held, err := c.store.AcquireLease(ctx, leaderLease, c.id, dead, c.ttl)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("could not renew the leader lease; the singleton jobs pause here until it is renewed")
		}
		held = false
	}
	if was := c.leader.Swap(held); was != held {
		if held {
			c.log.Info().Str("instance", c.id).Msg("this daemon leads: it runs the catch-up, trial endings, pruning and name refresh")
			if c.becameLeader != nil {
				c.becameLeader()
			}
		} else {
			c.log.Warn().Str("instance", c.id).Msg("this daemon no longer leads; another replica runs the singleton jobs")
		}
	}
	if ins, err := c.store.Instances(ctx); err == nil {
		n := 0
		for _, in := range ins {
			if in.Connections > 0 && in.Stopped.IsZero() && time.Since(in.Heartbeat) < 3*c.ttl {
				n++
			}
		}
		c.live.Store(int32(n))
	}
}

// run renews every third of the lease until ctx ends, then gives the lease
// up so that another replica takes over at once.
func (c *cluster) run(ctx context.Context) {
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if c.leader.Load() {
				if err := c.store.ReleaseLease(rctx, leaderLease, c.id); err == nil {
					c.log.Info().Msg("gave up the leader lease")
				}
				c.leader.Store(false)
			}
			_ = c.store.StopInstance(rctx)
			return
		case <-t.C:
			c.tick(ctx)
		}
	}
}
