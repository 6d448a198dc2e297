// Package catchup reads what was posted while no daemon was connected: it
// keeps the watermarks (Progress), stores a window per outage before
// anything is read, and on the leader reads each window through
// bot/history and hands every message to the same decision as a live
// event (scan.Pipeline.FromHistory). It also refreshes the name cache.
package catchup

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/history"
	"github.com/securechat/securechat/bot/internal/wait"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/bot/scan"
	"github.com/securechat/securechat/bot/socket"
	"github.com/securechat/securechat/store"
)

// Config configures catch-up after downtime: Socket Mode replays nothing
// for a time with no connection, and Slack gives up on an unacknowledged
// event after three retries (at once, after 1 and after 5 minutes).
type Config struct {
	Enabled bool
	// Gap: a reconnect after a longer loss of the connection reads the
	// missed window [30s]. At start the window since the last connection
	// is always read.
	Gap time.Duration
	// Lookback bounds the window [24h]. A longer outage sends an alert
	// naming the 'securechat scan' command that covers the rest.
	Lookback time.Duration
	// Pace is the history reader's pacing.
	Pace history.Pace
	// Retry is how long a failed catch-up waits before it is tried again
	// [1m].
	Retry time.Duration
}

// catchupOverlap is how far before a watermark the catch-up reads after a
// run that did not stop cleanly: the watermarks are saved every
// progressEvery, and workers finish events out of order.
const catchupOverlap = 2 * time.Minute

// progressEvery is how often the watermarks and the last connection time
// are saved.
const progressEvery = 2 * time.Second

// Progress saves the watermarks and the last connection time.
type Progress struct {
	Store ProgressStore
	Marks *scan.Marks
	Conn  *socket.State
	Log   zerolog.Logger
	Now   func() time.Time
	beat  time.Time // when the last connection time was last written
}

// heartbeatEvery is how often the last connection time is written when no
// watermark moved: an idle daemon does not write every progressEvery. After
// a crash the catch-up then reads at most this much more than it needs.
const heartbeatEvery = 30 * time.Second

// tick writes the watermarks that moved, and the last connection time; when
// none moved, only every heartbeatEvery.
func (p *Progress) tick(ctx context.Context) {
	if now := p.Now(); p.Marks.Moved() || p.beat.IsZero() || now.Sub(p.beat) >= heartbeatEvery {
		p.write(ctx, false)
	}
}

// Finish is the last save of a run; clean (every event seen was handled)
// marks the watermarks exact.
func (p *Progress) Finish(ctx context.Context, clean bool) { p.write(ctx, clean) }

// write saves the watermarks that moved and the last connection time. It
// runs on one goroutine at a time (the ticker's, then finish). While a
// catch-up window is not stored yet it saves nothing: the next start then
// reads from the bounds saved before the outage.
func (p *Progress) write(ctx context.Context, clean bool) {
	defer p.Marks.Saving()()
	if p.Marks.Held() {
		p.Log.Debug().Msg("progress not saved: a catch-up window is not stored yet")
		return
	}
	now := p.Now()
	ms := p.Marks.Take()
	if err := p.Store.SaveProgress(ctx, ms, p.Conn.LastUp(now), clean); err != nil {
		p.Marks.GiveBack(ms)
		p.Log.Warn().Err(err).Msg("could not save the catch-up watermarks; retrying (a restart may read more history than needed)")
		return
	}
	p.beat = now
}

func (p *Progress) Run(ctx context.Context) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick(ctx)
		}
	}
}

// Catchup reads what was posted while the daemon had no connection and
// feeds it through the pipeline.
type Catchup struct {
	Cfg Config
	// Leader, when set, says whether this daemon reads the stored windows
	// and refreshes names: of replicas, only the Leader does (any replica
	// stores the windows it notices).
	Leader    func() bool
	Reader    *history.Reader
	Store     Store
	Pipe      *scan.Pipeline
	Marks     *scan.Marks
	Types     []string // conversation types the token may list
	UsersRead bool     // the token has users:read
	Notes     notify.Notices
	Log       zerolog.Logger
	Metrics   *metrics.Metrics
	Now       func() time.Time
	Prev      store.Presence // what the last run left
	trigger   chan struct{}  // a catch-up is to run
	mu        sync.Mutex
	// fresh holds the windows not stored yet, oldest first; the progress
	// saving is held once for each (marks.hold).
	fresh    []window
	wasUp    bool
	first    bool // the first connection of this run is still to come
	downFrom time.Time
}

// window is one catch-up to run: from since (the last connection) to now;
// exact when the watermarks are exact (a clean stop). It is stored
// (store.OpenCatchupWindow) before anything is read.
type window struct {
	since time.Time
	exact bool
	why   string
	marks map[string]string // the watermarks when the connection came back
}

func New(c *Catchup) *Catchup {
	c.trigger = make(chan struct{}, 1)
	c.first = true
	return c
}

// Disconnected is called when the connection is lost.
func (c *Catchup) Disconnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wasUp && c.downFrom.IsZero() {
		c.downFrom = c.Now()
	}
	c.wasUp = false
}

// Connected is called when a connection is up: the first one of a run
// catches up since the last run's last connection, a later one after a gap
// longer than cfg.Gap.
func (c *Catchup) Connected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wasUp = true
	var w window
	switch {
	case c.first:
		c.first = false
		if c.Prev.LastConnected.IsZero() {
			c.Log.Info().Msg("catch-up: no earlier run on this database; history before now is not read (use 'securechat scan' for it)")
			wait.Nudge(c.trigger) // windows an earlier run left open are still read
			return
		}
		w = window{since: c.Prev.LastConnected, exact: c.Prev.Clean, why: "start"}
	case !c.downFrom.IsZero() && c.Now().Sub(c.downFrom) > c.Cfg.Gap:
		w = window{since: c.downFrom, why: "reconnect"}
	default:
		c.downFrom = time.Time{}
		return
	}
	c.downFrom = time.Time{}
	// The reader calls connected before it takes any event of the new
	// connection, so no live event of it has moved the watermarks yet.
	w.marks = c.Marks.Snapshot()
	// Nothing is saved until the window is stored: a live event of the new
	// connection must not move the bounds before the window holds them.
	c.Marks.Hold()
	c.fresh = append(c.fresh, w)
	wait.Nudge(c.trigger)
}

func (c *Catchup) Run(ctx context.Context) {
	names := time.NewTicker(10 * time.Minute)
	defer names.Stop()
	// Windows another replica stored are read by the leader: it looks for
	// them now and then (and at once when it takes the lease).
	look := time.NewTicker(windowLook)
	defer look.Stop()
	c.refreshNames(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-names.C:
			c.refreshNames(ctx)
		case <-look.C:
			if c.Leader != nil && c.Leader() {
				if ws, err := c.Store.CatchupWindows(ctx); err == nil && len(ws) > 0 {
					wait.Nudge(c.trigger)
				}
			}
		case <-c.trigger:
			err := c.once(ctx)
			if err == nil {
				c.Metrics.Catchups.WithLabelValues("done").Inc()
			}
			if err != nil && ctx.Err() == nil {
				c.Metrics.Catchups.WithLabelValues("failed").Inc()
				c.Log.Error().Err(err).Msg("catch-up failed; it is tried again in a minute (what it did not read stays in the database)")
				go func() {
					if wait.Sleep(ctx, c.Cfg.retry()) != nil {
						return
					}
					wait.Nudge(c.trigger)
				}()
			}
		}
	}
}

// windowLook is how often the leader looks for windows other replicas
// stored.
const windowLook = 15 * time.Second

// retry is how long a failed catch-up waits before it is tried again.
func (c Config) retry() time.Duration {
	if c.Retry > 0 {
		return c.Retry
	}
	return time.Minute
}

// unreadableCodes are the history errors a later try would meet again.
var unreadableCodes = []string{"channel_not_found", "not_in_channel", "missing_scope", "is_archived", "access_denied", "team_access_not_granted"}

// oldestFor is the lower bound of one conversation's part of a window:
// exactly after its watermark when the watermarks are exact, else from a
// little before it (catchupOverlap); from since when it has none; never
// older than the look-back's floor.
func oldestFor(wm string, since time.Time, exact bool, floor string) string {
	var from string
	switch {
	case wm != "" && exact:
		from = wm
	case wm != "":
		from = history.TSOf(history.TimeOfTS(wm).Add(-catchupOverlap))
	case exact:
		from = history.TSOf(since)
	default:
		from = history.TSOf(since.Add(-catchupOverlap))
	}
	if history.TSAfter(floor, from) {
		from = floor
	}
	return from
}

// storeFresh stores the windows not stored yet, oldest first, each with
// the lower bound of every conversation its watermarks know, and ends the
// hold on the progress saving for each one stored. With keep false (no
// conversation can be listed) they are dropped instead.
func (c *Catchup) storeFresh(ctx context.Context, start time.Time, keepAll bool) error {
	keep := keepAll
	for {
		c.mu.Lock()
		if len(c.fresh) == 0 {
			c.mu.Unlock()
			return nil
		}
		w := c.fresh[0]
		c.mu.Unlock()
		if keep && w.why == "reconnect" && c.Leader != nil {
			// Replicas: while this daemon was not connected, another may
			// have been, and Slack gave it the events. Only what nobody
			// was connected for is missing.
			if p, err := c.Store.OthersPresence(ctx); err == nil && p.LastConnected.After(w.since) {
				w.since = p.LastConnected
				if start.Sub(w.since) <= c.Cfg.Gap {
					keep = false // covered: nothing to read
					c.Log.Info().Msg("catch-up not needed: another replica was connected meanwhile")
				}
			}
		}
		if keep {
			floor := history.TSOf(start.Add(-c.Cfg.Lookback))
			cw := store.CatchupWindow{Since: w.since, Exact: w.exact, FloorTS: floor, Why: w.why, Progress: map[string]store.CatchupProgress{}}
			for ch, wm := range w.marks {
				cw.Progress[ch] = store.CatchupProgress{Oldest: oldestFor(wm, w.since, w.exact, floor)}
			}
			if _, err := c.Store.OpenCatchupWindow(ctx, cw); err != nil {
				return err // kept, with its hold: stored at the next try
			}
		}
		c.mu.Lock()
		c.fresh = c.fresh[1:]
		c.mu.Unlock()
		c.Marks.Release()
		keep = keepAll
	}
}

// once stores the fresh windows, then reads every stored window (those of
// earlier runs too), oldest first. Each conversation of a window is read
// newest page first from where it was left, and each page's progress is
// stored once the page is handled; a window is removed when every
// conversation in it is done.
func (c *Catchup) once(ctx context.Context) error {
	start := c.Now()
	if len(c.Types) == 0 {
		c.Log.Warn().Msg("catch-up skipped: the user token has none of channels:read, groups:read, im:read, mpim:read")
		return c.storeFresh(ctx, start, false)
	}
	if err := c.storeFresh(ctx, start, true); err != nil {
		return err
	}
	if !c.leads() {
		return nil // stored: the leader reads it
	}
	windows, err := c.Store.CatchupWindows(ctx)
	if err != nil {
		return err
	}
	if len(windows) == 0 {
		return nil
	}
	convs, err := c.Reader.Conversations(ctx, c.Types)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, conv := range convs {
		if conv.Name != "" {
			names[conv.ID] = conv.Name
		}
	}
	if err := c.Store.SetNames(ctx, store.NameConversation, names); err != nil {
		c.Log.Warn().Err(err).Msg("could not cache conversation names")
	}
	var read, failed int
	var firstErr error
	for _, cw := range windows {
		n, f, err := c.readWindow(ctx, cw, convs)
		read += n
		failed += f
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	c.Log.Info().Int("messages", read).Int("failed_conversations", failed).Dur("took", c.Now().Sub(start).Round(time.Millisecond)).
		Msg("catch-up done")
	c.refreshNames(ctx)
	if firstErr != nil {
		return fmt.Errorf("%d conversation(s) not read: %w", failed, firstErr)
	}
	return nil
}

// readWindow reads one stored window and removes it when every
// conversation in it is done. It returns the messages read and the
// conversations that failed, with the first error.
func (c *Catchup) readWindow(ctx context.Context, cw store.CatchupWindow, convs []history.Conversation) (read, failed int, firstErr error) {
	c.Log.Info().Str("why", cw.Why).Time("since", cw.Since).Dur("offline", cw.CreatedAt.Sub(cw.Since).Round(time.Second)).
		Time("window_opened", cw.CreatedAt).Int("conversations", len(convs)).
		Msg("catch-up: reading what was posted while securechat was not connected")
	for _, conv := range convs {
		if ctx.Err() != nil {
			return read, failed + 1, ctx.Err()
		}
		if !c.Pipe.Scope.Conversation(conv.ID, conv.Type) {
			continue
		}
		p, ok := cw.Progress[conv.ID]
		if p.Done {
			continue
		}
		if !ok {
			p = store.CatchupProgress{Oldest: oldestFor("", cw.Since, cw.Exact, cw.FloorTS)}
		}
		newest := ""
		n := 0
		err := c.Reader.Window(ctx, conv, history.Span{Oldest: p.Oldest, Latest: p.Latest,
			PageDone: func(oldest string) error {
				// Everything newer than oldest is handled: a restart goes
				// on from here, down to the same lower bound.
				p.Latest = oldest
				return c.Store.SaveCatchupProgress(ctx, cw.ID, conv.ID, p)
			}},
			func(m history.Message) error {
				n++
				m.Channel, m.ChannelType = conv.ID, conv.Type
				if history.TSAfter(m.TS, newest) {
					newest = m.TS
				}
				return c.Pipe.FromHistory(ctx, &m.Event, "catch-up")
			})
		var ae *history.APIError
		if errors.As(err, &ae) && slices.Contains(unreadableCodes, ae.Code) {
			// It will not be readable at the next try either (left, gone,
			// a scope removed): its part of the window is given up, rather
			// than keeping the window, and retrying it, for ever.
			c.Log.Warn().Str("channel", conv.ID).Str("error", ae.Code).
				Msg("catch-up: a conversation cannot be read; what was posted in it while securechat was not connected is not scanned (use 'securechat scan' once it is readable)")
			err = nil
		}
		if err == nil {
			p.Done = true
			err = c.Store.SaveCatchupProgress(ctx, cw.ID, conv.ID, p)
		}
		read += n
		c.Metrics.CaughtUp.Add(float64(n))
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			c.Log.Warn().Err(err).Str("channel", conv.ID).Msg("catch-up: could not read a conversation; the rest of its window is read at the next try, or at the next start")
			continue
		}
		c.Marks.Handled(conv.ID, newest)
	}
	if cw.Since.Before(history.TimeOfTS(cw.FloorTS)) && !cw.Alerted {
		c.outage(ctx, cw, history.TimeOfTS(cw.FloorTS))
	}
	if failed == 0 {
		if err := c.Store.CloseCatchupWindow(ctx, cw.ID); err != nil {
			return read, failed, err
		}
	}
	return read, failed, firstErr
}

// namesPerRefresh bounds the users.info and conversations.info calls of one
// name refresh.
const namesPerRefresh = 50

// namesMaxAge is how long a cached name is trusted before it is looked up
// again (people and channels get renamed).
const namesMaxAge = 24 * time.Hour

// refreshNames looks up the names of the conversations and authors of
// recorded leaks that the cache lacks (conversations.info, and users.info
// with users:read), for 'leaks list' and the alerts. Failures only leave IDs.
// leads reports whether this daemon runs the catch-up's singleton work.
func (c *Catchup) leads() bool { return c.Leader == nil || c.Leader() }

func (c *Catchup) refreshNames(ctx context.Context) {
	if !c.leads() {
		return
	}
	convs, users, err := c.Store.Unnamed(ctx, namesPerRefresh, c.Now().Add(-namesMaxAge))
	if err != nil {
		c.Log.Warn().Err(err).Msg("could not look for unnamed conversations and users")
		return
	}
	got := map[string]string{}
	for _, id := range convs {
		var r struct {
			Channel struct {
				Name string `json:"name"`
				User string `json:"user"`
			} `json:"channel"`
		}
		if err := c.Reader.Call(ctx, "conversations.info", url.Values{"channel": {id}}, &r); err != nil {
			c.Log.Debug().Err(err).Str("channel", id).Msg("no name for a conversation")
			continue
		}
		if r.Channel.Name != "" {
			got[id] = r.Channel.Name
		}
	}
	if err := c.Store.SetNames(ctx, store.NameConversation, got); err != nil {
		c.Log.Warn().Err(err).Msg("could not cache conversation names")
	}
	if !c.UsersRead {
		return
	}
	got = map[string]string{}
	for _, id := range users {
		var r struct {
			User struct {
				Name    string `json:"name"`
				Profile struct {
					DisplayName string `json:"display_name"`
				} `json:"profile"`
			} `json:"user"`
		}
		if err := c.Reader.Call(ctx, "users.info", url.Values{"user": {id}}, &r); err != nil {
			c.Log.Debug().Err(err).Str("user", id).Msg("no name for a user")
			continue
		}
		name := r.User.Profile.DisplayName
		if name == "" {
			name = r.User.Name
		}
		if name != "" {
			got[id] = name
		}
	}
	if err := c.Store.SetNames(ctx, store.NameUser, got); err != nil {
		c.Log.Warn().Err(err).Msg("could not cache user names")
	}
}

// outage alerts, once per outage (across restarts), that the catch-up did
// not cover the whole time offline.
func (c *Catchup) outage(ctx context.Context, cw store.CatchupWindow, floor time.Time) {
	since, now := cw.Since, cw.CreatedAt
	cmd := fmt.Sprintf("securechat scan --since %s --until %s", since.UTC().Format(time.RFC3339), floor.UTC().Format(time.RFC3339))
	queued, err := c.Store.AlertCatchupWindow(ctx, cw.ID, c.Notes.Outage(since, now, now.Sub(floor), cmd)...)
	if err != nil {
		c.Log.Error().Err(err).Msg("could not queue the outage alert")
		return
	}
	if !queued {
		return
	}
	c.Log.Error().Time("offline_since", since).Dur("lookback", now.Sub(floor)).Str("scan", cmd).
		Msg("securechat was offline for longer than the catch-up looks back: messages posted before the look-back were not scanned")
	c.Pipe.WakeNotifier()
}

// ProgressStore is where the watermarks and this daemon's connection time
// are saved.
type ProgressStore interface {
	SaveProgress(ctx context.Context, marks map[string]string, connected time.Time, clean bool) error
}

// Store is the catch-up's view: durable windows, the other
// replicas' presence, the name cache.
type Store interface {
	ProgressStore
	OpenCatchupWindow(ctx context.Context, w store.CatchupWindow) (int64, error)
	CatchupWindows(ctx context.Context) ([]store.CatchupWindow, error)
	SaveCatchupProgress(ctx context.Context, windowID int64, channel string, p store.CatchupProgress) error
	CloseCatchupWindow(ctx context.Context, id int64) error
	AlertCatchupWindow(ctx context.Context, id int64, notes ...store.OutboxItem) (bool, error)
	OthersPresence(ctx context.Context) (store.Presence, error)
	SetNames(ctx context.Context, kind string, names map[string]string) error
	Unnamed(ctx context.Context, limit int, staleBefore time.Time) (conversations, users []string, err error)
}

var (
	_ Store = (*store.Store)(nil)
)

// Trigger asks for a catch-up now (a daemon that became the leader reads
// the stored windows at once).
func (c *Catchup) Trigger() { wait.Nudge(c.trigger) }
