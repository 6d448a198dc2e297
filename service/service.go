// Package service holds securechat's admin use cases, shared by the CLI's
// commands and the daemon's Slack handlers (buttons, /securechat, App
// Home): pausing and resuming a rule, allowing a value, keeping a reported
// message deleted, cancelling and resuming deletions, editing rules, and
// the read models (rules with their noise, status). The rules for
// deleting, cancelling and auditing are written here once: every change
// names its Actor and is recorded in the audit log, in the transaction that
// makes it (package store), and an action whose
// change was made already (the same click twice, two admins at once)
// changes nothing and says who made it.
package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/securechat/securechat/store"
)

// Actor is who acts, and from where.
type Actor struct {
	Via string // "slack" or "os"
	ID  string // a Slack user id, or an OS user name
}

// SlackUser is a member acting from Slack.
func SlackUser(id string) Actor { return Actor{Via: "slack", ID: id} }

// OSUser is someone running the CLI on a machine with the database.
func OSUser(name string) Actor { return Actor{Via: "os", ID: name} }

// String is the audit log's form: slack:U…, os:NAME.
func (a Actor) String() string {
	id := a.ID
	if id == "" {
		id = "unknown"
	}
	return a.Via + ":" + id
}

// ErrNotAdmin is returned when a Slack member not on the admin list tries
// to change something.
var ErrNotAdmin = errors.New("only securechat's admins can do this")

// Service runs the use cases against one store.
type Service struct {
	store *store.Store
	// admins are the Slack user ids ([slack] admins) who may change
	// things from Slack. Someone at the CLI holds the database itself and
	// is always allowed.
	admins []string
	now    func() time.Time
}

// New returns a Service over st; admins are the Slack user ids allowed to
// act from Slack.
func New(st *store.Store, admins []string, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: st, admins: admins, now: now}
}

// IsAdmin reports whether a may change things.
func (s *Service) IsAdmin(a Actor) bool {
	return a.Via == "os" || a.Via == "slack" && slices.Contains(s.admins, a.ID)
}

func (s *Service) authorize(a Actor) error {
	if !s.IsAdmin(a) {
		return ErrNotAdmin
	}
	return nil
}

// PauseRule switches a rule to monitor: it records and alerts, and the
// queued deletions only it justified are cancelled (the messages stay).
func (s *Service) PauseRule(ctx context.Context, a Actor, id int64) (store.Change, error) {
	if err := s.authorize(a); err != nil {
		return store.Change{}, err
	}
	return s.store.PauseRule(ctx, id, a.String())
}

// ResumeRule switches a rule back to delete. Deletions held for it (the
// breaker's) stay held until resumed on their own.
func (s *Service) ResumeRule(ctx context.Context, a Actor, id int64) (store.Change, error) {
	if err := s.authorize(a); err != nil {
		return store.Change{}, err
	}
	return s.store.ResumeRule(ctx, id, a.String())
}

// AllowLeak allowlists the value a leak matched (by its keyed fingerprint)
// and closes the open reports about that value.
func (s *Service) AllowLeak(ctx context.Context, a Actor, leakID int64, note string) (store.AllowedValue, store.Change, error) {
	if err := s.authorize(a); err != nil {
		return store.AllowedValue{}, store.Change{}, err
	}
	return s.store.AllowLeak(ctx, leakID, note, a.String())
}

// Unallow takes an entry off the allowlist: its value fires again.
func (s *Service) Unallow(ctx context.Context, a Actor, entryID int64) error {
	if err := s.authorize(a); err != nil {
		return err
	}
	return s.store.RemoveAllowed(ctx, entryID, a.String())
}

// KeepDeleted closes the open reports about a leak's message: the admins
// looked, and it stays deleted.
func (s *Service) KeepDeleted(ctx context.Context, a Actor, leakID int64) (store.Change, error) {
	if err := s.authorize(a); err != nil {
		return store.Change{}, err
	}
	return s.store.KeepDeleted(ctx, leakID, a.String())
}

// CancelDeletions cancels the selected queued deletions.
func (s *Service) CancelDeletions(ctx context.Context, a Actor, sel store.Selection, why string) (int, error) {
	if err := s.authorize(a); err != nil {
		return 0, err
	}
	return s.store.CancelDeletions(ctx, sel, a.String(), why)
}

// ResumeDeletions resumes the selected held deletions still justified.
func (s *Service) ResumeDeletions(ctx context.Context, a Actor, sel store.Selection) (int, error) {
	if err := s.authorize(a); err != nil {
		return 0, err
	}
	return s.store.ResumeDeletions(ctx, sel, a.String())
}

// AddRule stores a new rule (already validated and weighed by the caller).
func (s *Service) AddRule(ctx context.Context, a Actor, r store.Regex) (store.Regex, error) {
	if err := s.authorize(a); err != nil {
		return store.Regex{}, err
	}
	return s.store.AddRuleAs(ctx, r, a.String())
}

// UpdateRule changes a rule's action (through PauseRule and ResumeRule, so
// that both ways cancel and audit alike) and description.
func (s *Service) UpdateRule(ctx context.Context, a Actor, id int64, u store.RegexUpdate) (store.Regex, store.Change, error) {
	if err := s.authorize(a); err != nil {
		return store.Regex{}, store.Change{}, err
	}
	var c store.Change
	if u.Action != nil {
		var err error
		switch *u.Action {
		case store.ActionMonitor:
			c, err = s.store.PauseRule(ctx, id, a.String())
		case store.ActionDelete:
			c, err = s.store.ResumeRule(ctx, id, a.String())
		default:
			err = fmt.Errorf("update regex %d: action %q: %w", id, *u.Action, store.ErrBadAction)
		}
		if err != nil {
			return store.Regex{}, c, err
		}
	}
	if u.Description != nil || u.Enabled != nil {
		_, n, err := s.store.UpdateRegex(ctx, id, store.RegexUpdate{Description: u.Description, Enabled: u.Enabled}, a.String())
		if err != nil {
			return store.Regex{}, c, err
		}
		c.Cancelled += n
		c.Done = true
	}
	r, err := s.store.Regex(ctx, id)
	return r, c, err
}

// RemoveRule removes a rule; queued deletions only it justified are
// cancelled.
func (s *Service) RemoveRule(ctx context.Context, a Actor, id int64) (int, error) {
	if err := s.authorize(a); err != nil {
		return 0, err
	}
	return s.store.DeleteRegex(ctx, id, a.String())
}

// SetRuleEnabled enables or disables a rule.
func (s *Service) SetRuleEnabled(ctx context.Context, a Actor, id int64, on bool) (int, error) {
	if err := s.authorize(a); err != nil {
		return 0, err
	}
	return s.store.SetRegexEnabled(ctx, id, on, a.String())
}
