package service

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/securechat/securechat/store"
)

// RuleView is a rule with what it found and what members said about it.
type RuleView struct {
	store.Regex
	store.RuleNoise
	// FalsePositiveShare is the share of its leaks reported "Not a
	// secret" (0 to 1).
	FalsePositiveShare float64 `json:"false_positive_share"`
}

// Rules lists the rules with their hits and reports, the noisiest first
// (by false-positive share, then reports, then id).
func (s *Service) Rules(ctx context.Context) ([]RuleView, error) {
	rs, err := s.store.Regexes(ctx)
	if err != nil {
		return nil, err
	}
	noise, err := s.store.Noise(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RuleView, 0, len(rs))
	for _, r := range rs {
		n := noise[r.ID]
		out = append(out, RuleView{Regex: r, RuleNoise: n, FalsePositiveShare: n.Share()})
	}
	slices.SortStableFunc(out, func(a, b RuleView) int {
		return cmp.Or(cmp.Compare(b.FalsePositiveShare, a.FalsePositiveShare), cmp.Compare(b.NotSecret, a.NotSecret), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Status is the daemon's health as the database sees it.
type Status struct {
	Deletions   map[string]int `json:"deletions"` // by status
	OpenReports int            `json:"open_reports"`
	Leader      string         `json:"leader,omitempty"`
	// Daemons are the ones that beat within the last minute.
	Daemons  []store.Instance `json:"daemons"`
	Rules    int              `json:"rules"`
	Deleting int              `json:"deleting_rules"`
	LastLeak time.Time        `json:"last_leak"`
	// Notifications waiting to be sent, and failed.
	OutboxPending int `json:"outbox_pending"`
	OutboxFailed  int `json:"outbox_failed"`
}

// Status reads the health of the daemons and their queues.
func (s *Service) Status(ctx context.Context) (Status, error) {
	var st Status
	var err error
	if st.Deletions, err = s.store.DeletionCounts(ctx); err != nil {
		return st, err
	}
	if st.OpenReports, err = s.store.OpenReports(ctx); err != nil {
		return st, err
	}
	if st.Leader, err = s.store.LeaseHolder(ctx, "leader"); err != nil {
		st.Leader = ""
	}
	if st.Daemons, err = s.store.Running(ctx, time.Minute); err != nil {
		return st, err
	}
	rs, err := s.store.Regexes(ctx)
	if err != nil {
		return st, err
	}
	for _, r := range rs {
		if r.Enabled {
			st.Rules++
			if r.Action == store.ActionDelete {
				st.Deleting++
			}
		}
	}
	last, err := s.store.Leaks(ctx, store.LeakFilter{Limit: 1})
	if err != nil {
		return st, err
	}
	if len(last) > 0 {
		st.LastLeak = last[0].DetectedAt
	}
	oc, err := s.store.OutboxCounts(ctx)
	if err != nil {
		return st, err
	}
	for _, byStatus := range oc {
		st.OutboxPending += byStatus[store.OutboxPending]
		st.OutboxFailed += byStatus[store.OutboxFailed]
	}
	return st, nil
}

// RecentLeaks returns the newest leaks (masked excerpts only).
func (s *Service) RecentLeaks(ctx context.Context, n int) ([]store.Leak, error) {
	return s.store.Leaks(ctx, store.LeakFilter{Limit: n})
}

// Queued returns the held and pending deletions' leaks, newest first, at
// most n of each.
func (s *Service) Queued(ctx context.Context, n int) (held, pending []store.Leak, err error) {
	if held, err = s.store.Leaks(ctx, store.LeakFilter{Status: store.StatusHeld, Limit: n}); err != nil {
		return nil, nil, err
	}
	pending, err = s.store.Leaks(ctx, store.LeakFilter{Status: store.StatusPending, Limit: n})
	return held, pending, err
}

// Report records a member's report about their own message (see
// store.Report): anyone may report, but only their own leaks.
func (s *Service) Report(ctx context.Context, in store.ReportInput, notes func([]store.Leak) []store.OutboxItem, noise store.Noise) (store.ReportResult, error) {
	return s.store.Report(ctx, in, notes, noise)
}

// Leak returns one leak.
func (s *Service) Leak(ctx context.Context, id int64) (store.Leak, error) {
	ls, err := s.store.Leaks(ctx, store.LeakFilter{ID: id})
	if err != nil {
		return store.Leak{}, err
	}
	if len(ls) == 0 {
		return store.Leak{}, store.ErrNotFound
	}
	return ls[0], nil
}

// MessageLeaks returns the leaks recorded for one message.
func (s *Service) MessageLeaks(ctx context.Context, channel, ts string) ([]store.Leak, error) {
	return s.store.Leaks(ctx, store.LeakFilter{Channel: channel, TS: ts})
}

// Rule returns one rule.
func (s *Service) Rule(ctx context.Context, id int64) (store.Regex, error) {
	return s.store.Regex(ctx, id)
}
