package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Regex is one pattern the admins keep, with the checks that refine it.
type Regex struct {
	ID          int64  `json:"id"`
	Pattern     string `json:"pattern"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	// Action is what a match does: ActionDelete (the default) or
	// ActionMonitor (record and alert, do not delete).
	Action string `json:"action"`
	// Source says where the rule came from: "" (added by hand),
	// "builtin:NAME", "gitleaks:RULE-ID" or "file:NAME".
	Source        string   `json:"source,omitempty"`
	Validator     string   `json:"validator,omitempty"`
	SecretGroup   int      `json:"secret_group,omitempty"`
	Entropy       float64  `json:"entropy,omitempty"`
	Keywords      []string `json:"keywords,omitempty"`
	AllowPatterns []string `json:"allow_patterns,omitempty"`
	Stopwords     []string `json:"stopwords,omitempty"`
	// Allowlists are gitleaks-style allowlists (see detect.Allowlist).
	Allowlists []Allowlist `json:"allowlists,omitempty"`
	// TrippedReason says why the runaway-rule breaker switched the rule to
	// monitor; "" when it did not (or an admin set its action since).
	TrippedReason string `json:"tripped_reason,omitempty"`
	// DisabledReason says why securechat disabled the rule itself (e.g. it
	// is over the current limits); "" otherwise.
	DisabledReason string `json:"disabled_reason,omitempty"`
	// TrialUntil, when set, is when a rule in trial (stored in monitor)
	// starts deleting.
	TrialUntil *time.Time `json:"trial_until,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// Allowlist is a gitleaks-style allowlist of a rule: Target is "secret"
// (or ""), "match" or "line"; with And every part given must hold.
type Allowlist struct {
	Target    string   `json:"target,omitempty"`
	Regexes   []string `json:"regexes,omitempty"`
	Stopwords []string `json:"stopwords,omitempty"`
	And       bool     `json:"and,omitempty"`
}

func encodeAllowlists(as []Allowlist) string {
	if len(as) == 0 {
		return ""
	}
	b, _ := json.Marshal(as)
	return string(b)
}

func decodeAllowlists(s string) []Allowlist {
	if s == "" {
		return nil
	}
	var as []Allowlist
	_ = json.Unmarshal([]byte(s), &as) // written by encodeAllowlists only
	return as
}

// Rule actions.
const (
	ActionDelete  = "delete"
	ActionMonitor = "monitor"
)

const regexColumns = `id, pattern, description, enabled, action, source, validator, secret_group, entropy,
	keywords, allow_patterns, stopwords, allowlists, disabled_reason, tripped_reason, trial_until, created_at, updated_at`

type rowScanner interface{ Scan(...any) error }

func scanRegex(row rowScanner) (Regex, error) {
	var r Regex
	var created, updated, trial int64
	var kw, allow, stop, lists string
	err := row.Scan(&r.ID, &r.Pattern, &r.Description, &r.Enabled, &r.Action, &r.Source, &r.Validator, &r.SecretGroup,
		&r.Entropy, &kw, &allow, &stop, &lists, &r.DisabledReason, &r.TrippedReason, &trial, &created, &updated)
	if trial > 0 {
		t := fromMillis(trial)
		r.TrialUntil = &t
	}
	r.Allowlists = decodeAllowlists(lists)
	r.Keywords, r.AllowPatterns, r.Stopwords = splitLines(kw), splitLines(allow), splitLines(stop)
	r.CreatedAt, r.UpdatedAt = fromMillis(created), fromMillis(updated)
	return r, err
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// DuplicateError says which regex already holds a pattern (or, for a rule
// imported from gitleaks, that gitleaks id). It matches ErrDuplicate with
// errors.Is.
type DuplicateError struct {
	ID      int64
	Pattern string
	Source  string // set when the rule is keyed by its gitleaks id
}

func (e *DuplicateError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("%s is already imported as regex %d", e.Source, e.ID)
	}
	p := e.Pattern
	if r := []rune(p); len(r) > 80 {
		p = string(r[:79]) + "…"
	}
	return fmt.Sprintf("pattern %q already exists as regex %d", p, e.ID)
}

// gitleaksKeyed reports whether a rule is keyed by its gitleaks id rather
// than its pattern.
func gitleaksKeyed(source string) bool { return strings.HasPrefix(source, "gitleaks:") }

// Is reports whether target is ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// AddRegex stores a new enabled regex with only a pattern and a
// description; see AddRule.
func (s *Store) AddRegex(ctx context.Context, pattern, description string) (Regex, error) {
	return s.AddRule(ctx, Regex{Pattern: pattern, Description: description, Enabled: true})
}

// AddRule stores a new regex with its checks and returns it with its id and
// times. The pattern is not validated here (detect does that). It returns a
// *DuplicateError when the same pattern is stored already, or, for a rule
// imported from gitleaks (source "gitleaks:ID"), when that gitleaks id is:
// gitleaks rules that share a regex keep their own ids.
func (s *Store) AddRule(ctx context.Context, r Regex) (Regex, error) {
	return s.AddRuleAs(ctx, r, "")
}

// AddRuleAs is AddRule by an admin: actor ("os:NAME", "slack:U…") is
// written to the audit log in the same transaction ("" writes nothing).
func (s *Store) AddRuleAs(ctx context.Context, r Regex, actor string) (Regex, error) {
	now := s.millis()
	if r.Action == "" {
		r.Action = ActionDelete
	}
	if r.Action != ActionDelete && r.Action != ActionMonitor {
		return Regex{}, fmt.Errorf("add regex: action %q: %w", r.Action, ErrBadAction)
	}
	if gitleaksKeyed(r.Source) {
		stored, err := s.RegexBySource(ctx, r.Source)
		if err == nil {
			return Regex{}, &DuplicateError{ID: stored.ID, Pattern: r.Pattern, Source: r.Source}
		}
		if !errors.Is(err, ErrNotFound) {
			return Regex{}, fmt.Errorf("add regex: %w", err)
		}
	}
	var id int64
	err := s.inTx(ctx, func(tx *txn) error {
		err := tx.QueryRowContext(ctx,
			`INSERT INTO regexes (pattern, description, enabled, action, source, validator, secret_group, entropy,
		                      keywords, allow_patterns, stopwords, allowlists, disabled_reason, trial_until, created_at, updated_at,
		                      defined_after_leak)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(id), 0) FROM leaks))
		 RETURNING id`,
			r.Pattern, r.Description, r.Enabled, r.Action, r.Source, r.Validator, r.SecretGroup, r.Entropy,
			strings.Join(r.Keywords, "\n"), strings.Join(r.AllowPatterns, "\n"), strings.Join(r.Stopwords, "\n"),
			encodeAllowlists(r.Allowlists), r.DisabledReason, trialMillis(r), now, now).Scan(&id)
		if err != nil || actor == "" {
			return err
		}
		_, err = audit(ctx, tx, now, AuditEntry{Actor: actor, Action: "rule.add", Target: RegexTarget(id), Detail: "action " + r.Action}, "")
		return err
	})
	if err != nil {
		if isUnique(err) {
			var id int64
			if qerr := s.db.QueryRowContext(ctx, `SELECT id FROM regexes WHERE pattern = ? AND source NOT LIKE 'gitleaks:%'`, r.Pattern).Scan(&id); qerr == nil {
				return Regex{}, &DuplicateError{ID: id, Pattern: r.Pattern}
			}
			return Regex{}, fmt.Errorf("add regex: %w", ErrDuplicate)
		}
		return Regex{}, fmt.Errorf("add regex: %w", classify(err))
	}
	r.ID = id
	r.CreatedAt, r.UpdatedAt = fromMillis(now), fromMillis(now)
	return r, nil
}

// Regexes returns every stored regex, enabled or not, by id.
func (s *Store) Regexes(ctx context.Context) ([]Regex, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+regexColumns+` FROM regexes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list regexes: %w", classify(err))
	}
	defer rows.Close()
	var out []Regex
	for rows.Next() {
		r, err := scanRegex(rows)
		if err != nil {
			return nil, fmt.Errorf("list regexes: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list regexes: %w", classify(err))
	}
	return out, nil
}

// Regex returns one regex by id, or ErrNotFound.
func (s *Store) Regex(ctx context.Context, id int64) (Regex, error) {
	r, err := scanRegex(s.db.QueryRowContext(ctx, `SELECT `+regexColumns+` FROM regexes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Regex{}, fmt.Errorf("regex %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Regex{}, fmt.Errorf("get regex %d: %w", id, classify(err))
	}
	return r, nil
}

// DeleteRegex removes a regex. Leaks it found keep its id and description.
// In the same transaction it cancels the queued deletions that no other
// enforcing finding still justifies (see CancelUnjustified), recording by,
// and returns how many. It returns ErrNotFound when there is no such regex.
func (s *Store) DeleteRegex(ctx context.Context, id int64, by string) (int, error) {
	var cancelled int
	err := s.inTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM regexes WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("regex %d: %w", id, ErrNotFound)
		}
		cancelled, err = cancelUnjustified(ctx, tx, s.millis(), by, fmt.Sprintf("regex %d removed", id))
		if err != nil || by == "" {
			return err
		}
		_, err = audit(ctx, tx, s.millis(), AuditEntry{Actor: by, Action: "rule.remove", Target: RegexTarget(id),
			Detail: fmt.Sprintf("%d queued deletion(s) cancelled", cancelled)}, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("remove regex %d: %w", id, err)
	}
	return cancelled, nil
}

// SetRegexEnabled enables or disables a regex without removing it; enabling
// clears a DisabledReason. Disabling cancels, in the same transaction, the
// queued deletions no other enforcing finding still justifies, and returns
// how many. It returns ErrNotFound when there is no such regex.
func (s *Store) SetRegexEnabled(ctx context.Context, id int64, enabled bool, by string) (int, error) {
	_, cancelled, err := s.UpdateRegex(ctx, id, RegexUpdate{Enabled: &enabled}, by)
	return cancelled, err
}

// DisableRegex disables a regex that securechat itself found unusable, with
// the reason 'regex list' shows. It cancels nothing: the deletions its
// findings queued stay as they are.
func (s *Store) DisableRegex(ctx context.Context, id int64, reason string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE regexes SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?`,
		reason, s.millis(), id)
	if err != nil {
		return fmt.Errorf("disable regex %d: %w", id, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("regex %d: %w", id, ErrNotFound)
	}
	return nil
}

// ErrBadAction is returned for an action other than delete or monitor.
var ErrBadAction = errors.New("action must be delete or monitor")

// RegexUpdate lists the fields UpdateRegex changes; nil ones stay.
type RegexUpdate struct {
	Description *string
	Action      *string
	Enabled     *bool
}

// UpdateRegex changes a regex's description, action or enabled flag. When
// the change takes enforcement away (disabled, or action monitor), it
// cancels in the same transaction the queued deletions that no other
// enforcing finding still justifies, recording by, and returns how many.
// A non-empty by ("os:NAME", "slack:U…") is written to the audit log in the
// same transaction. It returns ErrNotFound when there is no such regex and
// ErrBadAction for an unknown action.
func (s *Store) UpdateRegex(ctx context.Context, id int64, u RegexUpdate, by string) (Regex, int, error) {
	var cancelled int
	err := s.inTx(ctx, func(tx *txn) error {
		cancelled = 0
		now := s.millis()
		if u.Action != nil {
			c, err := switchRuleTx(ctx, tx, now, id, by, *u.Action)
			if err != nil {
				return err
			}
			cancelled = c.Cancelled
		}
		if u.Description == nil && u.Enabled == nil {
			return nil
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE regexes SET description = COALESCE(?, description), enabled = COALESCE(?, enabled),
			        disabled_reason = CASE WHEN ? = 1 THEN '' ELSE disabled_reason END, updated_at = ? WHERE id = ?`,
			u.Description, u.Enabled, u.Enabled != nil && *u.Enabled, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("regex %d: %w", id, ErrNotFound)
		}
		if by != "" {
			var what []string
			if u.Description != nil {
				what = append(what, fmt.Sprintf("description %q", *u.Description))
			}
			if u.Enabled != nil {
				what = append(what, fmt.Sprintf("enabled %t", *u.Enabled))
			}
			if _, err := audit(ctx, tx, now, AuditEntry{Actor: by, Action: "rule.update", Target: RegexTarget(id),
				Detail: strings.Join(what, ", ")}, ""); err != nil {
				return err
			}
		}
		if u.Enabled == nil || *u.Enabled {
			return nil
		}
		n, err := cancelUnjustified(ctx, tx, now, by, fmt.Sprintf("regex %d disabled", id))
		cancelled += n
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Regex{}, 0, err
		}
		return Regex{}, 0, fmt.Errorf("update regex %d: %w", id, err)
	}
	r, err := s.Regex(ctx, id)
	return r, cancelled, err
}

// RulesGeneration returns a number that changes whenever the regex table or
// the allowlist changes, from this process or any other. It is one indexed read, cheap
// enough to poll every second.
func (s *Store) RulesGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'rules_generation'`).Scan(&g)
	if err != nil {
		return 0, fmt.Errorf("read rules generation: %w", classify(err))
	}
	return g, nil
}

// RegexBySource returns the regex imported from source ("gitleaks:ID"), or
// ErrNotFound. When several share it, the oldest is returned.
func (s *Store) RegexBySource(ctx context.Context, source string) (Regex, error) {
	r, err := scanRegex(s.db.QueryRowContext(ctx, `SELECT `+regexColumns+` FROM regexes WHERE source = ? ORDER BY id LIMIT 1`, source))
	if errors.Is(err, sql.ErrNoRows) {
		return Regex{}, fmt.Errorf("regex from %s: %w", source, ErrNotFound)
	}
	if err != nil {
		return Regex{}, fmt.Errorf("get regex from %s: %w", source, classify(err))
	}
	return r, nil
}

// AddAllowlists appends to a stored regex the allowlists it does not have
// yet (a gitleaks override that only adds an allowlist to a rule of that id)
// and returns how many it added: importing the same file again adds none.
func (s *Store) AddAllowlists(ctx context.Context, id int64, as []Allowlist) (int, error) {
	added := 0
	err := s.inTx(ctx, func(tx *txn) error {
		var cur string
		if err := tx.QueryRowContext(ctx, `SELECT allowlists FROM regexes WHERE id = ?`, id).Scan(&cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("regex %d: %w", id, ErrNotFound)
			}
			return err
		}
		all := decodeAllowlists(cur)
		have := map[string]bool{}
		for _, a := range all {
			have[encodeAllowlists([]Allowlist{a})] = true
		}
		for _, a := range as {
			if k := encodeAllowlists([]Allowlist{a}); !have[k] {
				have[k] = true
				all = append(all, a)
				added++
			}
		}
		if added == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE regexes SET allowlists = ?, updated_at = ? WHERE id = ?`, encodeAllowlists(all), s.millis(), id)
		return err
	})
	return added, err
}

func trialMillis(r Regex) int64 {
	if r.TrialUntil == nil {
		return 0
	}
	return r.TrialUntil.UnixMilli()
}

// EndTrials switches every enabled rule whose trial has ended by now to
// delete, and queues notes(rule) for each, in one transaction: with several
// daemons on the database, one of them does it, once. It returns the rules
// switched.
func (s *Store) EndTrials(ctx context.Context, now time.Time, notes func(Regex) []OutboxItem) ([]Regex, error) {
	var due bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM regexes
		WHERE trial_until > 0 AND trial_until <= ? AND enabled = 1 AND action = 'monitor')`, now.UnixMilli()).Scan(&due); err != nil {
		return nil, fmt.Errorf("look for ended rule trials: %w", classify(err))
	}
	if !due {
		return nil, nil // the common case: no write transaction
	}
	var ended []Regex
	err := s.inTx(ctx, func(tx *txn) error {
		// One statement ends the trials and says which it ended: two
		// replicas at once end each trial once, and alert once.
		ended = ended[:0]
		ms := s.millis()
		rows, err := tx.QueryContext(ctx, `UPDATE regexes SET action = 'delete', trial_until = 0, updated_at = ?
			WHERE trial_until > 0 AND trial_until <= ? AND enabled = 1 AND action = 'monitor'
			RETURNING `+regexColumns, ms, now.UnixMilli())
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRegex(rows)
			if err != nil {
				rows.Close()
				return err
			}
			ended = append(ended, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		slices.SortFunc(ended, func(a, b Regex) int { return cmp.Compare(a.ID, b.ID) })
		for i := range ended {
			ended[i].TrialUntil = nil
			if err := enqueue(ctx, tx, ms, notes(ended[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end rule trials: %w", err)
	}
	return ended, nil
}

// RedefineRule replaces the definition of a stored rule (its pattern and
// checks: what a re-import of a gitleaks id with another regex brings),
// keeping its id, action, enabled flag and history. Findings recorded
// before it are the old definition's and no longer justify a deletion
// (see enforcing): in the same transaction it cancels, recording by, the
// queued deletions nothing else justifies, and returns how many.
func (s *Store) RedefineRule(ctx context.Context, id int64, r Regex, by string) (int, error) {
	var cancelled int
	err := s.inTx(ctx, func(tx *txn) error {
		now := s.millis()
		res, err := tx.ExecContext(ctx,
			`UPDATE regexes SET pattern = ?, description = ?, validator = ?, secret_group = ?, entropy = ?, keywords = ?,
			        allow_patterns = ?, stopwords = ?, allowlists = ?, updated_at = ?,
			        defined_after_leak = (SELECT COALESCE(MAX(id), 0) FROM leaks)
			 WHERE id = ?`,
			r.Pattern, r.Description, r.Validator, r.SecretGroup, r.Entropy, strings.Join(r.Keywords, "\n"),
			strings.Join(r.AllowPatterns, "\n"), strings.Join(r.Stopwords, "\n"), encodeAllowlists(r.Allowlists), now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("regex %d: %w", id, ErrNotFound)
		}
		cancelled, err = cancelUnjustified(ctx, tx, now, by, fmt.Sprintf("regex %d redefined", id))
		if err != nil || by == "" {
			return err
		}
		_, err = audit(ctx, tx, now, AuditEntry{Actor: by, Action: "rule.redefine", Target: RegexTarget(id),
			Detail: fmt.Sprintf("pattern %q; %d queued deletion(s) cancelled", r.Pattern, cancelled)}, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("redefine regex %d: %w", id, err)
	}
	return cancelled, nil
}
