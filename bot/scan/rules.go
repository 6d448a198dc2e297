package scan

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/internal/wait"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/ruleset"
)

// Rules holds the rule snapshot in force and replaces it when the store's
// Rules generation moves. Readers take the current snapshot with current;
// a snapshot is immutable, so a scan never sees half a change.
type Rules struct {
	src     ruleset.Source
	key     []byte
	metrics *metrics.Metrics
	log     zerolog.Logger
	snap    atomic.Pointer[ruleset.Snapshot]
	// EndTrials, when set, switches rules whose trial ended to delete; it
	// runs before each reload.
	EndTrials func(ctx context.Context)
	// MaxAge: an event decided when the last look at the rules generation
	// is older than this looks first (0: never). The ticker keeps it fresh;
	// a process that was paused (SIGSTOP, a frozen VM, a long GC) has a
	// stale view and events waiting in its sockets.
	MaxAge time.Duration
	mu     sync.Mutex // one reload at a time
	looked atomic.Pointer[time.Time]
	hintCh chan struct{}
}

// Hint says the rules may have changed (a NOTIFY from another process):
// run looks now rather than at its next tick.
func (r *Rules) Hint() { wait.Nudge(r.hintCh) }

func NewRules(src ruleset.Source, key []byte, m *metrics.Metrics, log zerolog.Logger) *Rules {
	return &Rules{src: src, key: key, metrics: m, log: log, hintCh: make(chan struct{}, 1)}
}

// disabler is a source that can disable a stored rule; *store.Store is one.
type disabler interface {
	DisableRegex(ctx context.Context, id int64, reason string) error
}

// Current returns the snapshot in force (nil before the first reload).
func (r *Rules) Current() *ruleset.Snapshot { return r.snap.Load() }

// Reload loads a new snapshot when the rules generation changed. Patterns
// that no longer compile are logged and skipped.
func (r *Rules) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked(ctx)
}

// stale reports whether the last look at the rules generation is older
// than maxAge.
func (r *Rules) stale() bool {
	last := r.looked.Load()
	return r.MaxAge > 0 && last != nil && time.Since(*last) > r.MaxAge
}

func (r *Rules) reloadLocked(ctx context.Context) error {
	now := time.Now() // monotonic: a stop of the process counts
	r.looked.Store(&now)
	gen, err := r.src.RulesGeneration(ctx)
	if err != nil {
		return err
	}
	if cur := r.snap.Load(); cur != nil && cur.Generation == gen {
		return nil
	}
	start := time.Now()
	snap, err := ruleset.Load(ctx, r.src, r.key)
	if err != nil {
		return err
	}
	for _, e := range snap.Skipped {
		var pe *detect.PatternError
		if !errors.As(e, &pe) {
			continue
		}
		d, canDisable := r.src.(disabler)
		if errors.Is(pe.Err, detect.ErrTooLarge) && canDisable && pe.ID != 0 {
			// A rule stored before the cost limit: disabled with the reason
			// 'regex list' shows, never dropped silently.
			if err := d.DisableRegex(ctx, pe.ID, pe.Err.Error()); err != nil {
				r.log.Warn().Err(err).Int64("regex_id", pe.ID).Msg("cannot disable a regex over the cost limit")
			}
			r.log.Warn().Int64("regex_id", pe.ID).Err(pe.Err).Msg("disabled a regex over the cost limit; 'securechat regex list' shows why")
			continue
		}
		r.log.Warn().Int64("regex_id", pe.ID).Err(pe.Err).Msg("skipping a regex that does not compile; fix or remove it with 'securechat regex'")
	}
	r.snap.Store(snap)
	r.metrics.Generation.Set(float64(snap.Generation))
	r.metrics.Rules.Set(float64(snap.Set.Len()))
	ev := r.log.Info()
	if snap.Set.Len() == 0 {
		ev = r.log.Warn()
	}
	ev.Int("rules", snap.Set.Len()).Int("skipped", len(snap.Skipped)).Int("allowlisted_values", snap.Allowlisted).
		Int64("generation", snap.Generation).Dur("took", time.Since(start)).Msg("rules loaded")
	return nil
}

// forEvent returns the snapshot to decide an event with: the current one,
// after a look at the rules generation when the last look is older than
// maxAge (at most one look per maxAge, so a database that does not answer
// does not slow every event).
func (r *Rules) forEvent(ctx context.Context) *ruleset.Snapshot {
	if r.stale() {
		r.mu.Lock()
		// The workers that waited here while another looked need not
		// look again.
		if r.stale() {
			if err := r.reloadLocked(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("could not look for rule changes before deciding; deciding with the current rules")
			}
		}
		r.mu.Unlock()
	}
	return r.Current()
}

// Run reloads every interval until ctx ends.
func (r *Rules) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	sampled := r.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.hintCh:
		}
		if r.EndTrials != nil {
			r.EndTrials(ctx)
		}
		if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
			sampled.Warn().Err(err).Msg("could not reload rules; keeping the current ones")
		}
	}
}

// Mask hides every value the current rules find in text a person typed (a
// report's reason) behind its masked excerpt, so that a secret pasted into
// it is stored and shown as masked as any leak. The text is normalised as
// messages are.
func (r *Rules) Mask(text string) string {
	snap := r.Current()
	norm := detect.Normalize(text)
	if snap == nil {
		return norm
	}
	var b strings.Builder
	last := 0
	for _, f := range snap.Decide(norm, true).Findings {
		if f.Start < last || f.End > len(norm) {
			continue // overlapping findings are masked jointly already
		}
		b.WriteString(norm[last:f.Start])
		b.WriteString(f.Excerpt)
		last = f.End
	}
	b.WriteString(norm[last:])
	return b.String()
}
