// Package ruleset turns the rules kept in the store into what scans messages:
// it owns the one mapping from a stored regex (store.Regex) to a detection
// rule (detect.Rule), loads an immutable Snapshot (the compiled set, each
// rule's action and the allowlisted value fingerprints) and decides, for a
// message, which findings count and whether the message is to be deleted.
// The daemon, 'securechat check' and the demo all decide through it, so they
// give the same verdict on the same text.
package ruleset

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// Rule maps a stored regex to the detection rule the engine compiles.
func Rule(r store.Regex) detect.Rule {
	return detect.Rule{
		ID: r.ID, Pattern: r.Pattern, Description: r.Description,
		Validator: r.Validator, SecretGroup: r.SecretGroup, Entropy: r.Entropy,
		Keywords: r.Keywords, AllowPatterns: r.AllowPatterns, Stopwords: r.Stopwords,
	}
}

// FromBuiltin returns a curated rule as a regex to store: enabled, with its
// checks, its source "builtin:NAME" and the default action.
func FromBuiltin(b detect.Builtin) store.Regex {
	return store.Regex{Pattern: b.Pattern, Description: b.Description, Enabled: true, Source: "builtin:" + b.Name,
		Validator: b.Validator, SecretGroup: b.SecretGroup, Entropy: b.Entropy, Keywords: b.Keywords,
		AllowPatterns: b.Allow, Stopwords: b.Stopwords}
}

// Compile compiles the enabled regexes into a rule set. Regexes that do not
// compile are left out and reported as *detect.PatternError values.
func Compile(rs []store.Regex) (*detect.Set, []error) {
	rules := make([]detect.Rule, 0, len(rs))
	for _, r := range rs {
		if r.Enabled {
			rules = append(rules, Rule(r))
		}
	}
	return detect.Compile(rules)
}

// Validate checks a regex exactly as Compile will compile it: the pattern
// and every check (validator, secret group, entropy, allow patterns). The
// error says what is wrong without repeating the pattern.
func Validate(r store.Regex) error {
	rule := Rule(r)
	rule.ID = 0
	_, errs := detect.Compile([]detect.Rule{rule})
	if len(errs) == 0 {
		return nil
	}
	var pe *detect.PatternError
	if errors.As(errs[0], &pe) {
		return errors.New(strings.TrimPrefix(pe.Error(), fmt.Sprintf("pattern %q is not usable: ", pe.Pattern)))
	}
	return errs[0]
}

// Source is what a Snapshot is loaded from; *store.Store is one.
type Source interface {
	RulesGeneration(ctx context.Context) (int64, error)
	Regexes(ctx context.Context) ([]store.Regex, error)
	AllowedMACs(ctx context.Context) (map[string]bool, error)
}

// Snapshot is the rule set in force at one generation of the store. It is
// immutable and safe for concurrent use.
type Snapshot struct {
	// Set is the compiled set of the enabled regexes that compile.
	Set *detect.Set
	// Generation is the store's rules generation the snapshot was read at.
	Generation int64
	// Skipped are the enabled regexes that did not compile, as
	// *detect.PatternError values.
	Skipped []error
	// Allowlisted is how many value fingerprints are allowlisted.
	Allowlisted int

	actions map[int64]string // regex id → action
	allowed map[string]bool  // allowlisted value fingerprints
	keyed   bool             // fingerprints are computed (an allowlist key is set)
}

// Load reads the rules and the allowlist from src and compiles them. key is
// the allowlist secret that keys value fingerprints; with a nil key no
// fingerprint is computed and nothing is allowlisted. It returns an error
// only when src cannot be read.
func Load(ctx context.Context, src Source, key []byte) (*Snapshot, error) {
	gen, err := src.RulesGeneration(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := src.Regexes(ctx)
	if err != nil {
		return nil, err
	}
	var allowed map[string]bool
	if key != nil {
		if allowed, err = src.AllowedMACs(ctx); err != nil {
			return nil, err
		}
	}
	snap := New(rs, allowed, key)
	snap.Generation = gen
	return snap, nil
}

// New compiles a snapshot from regexes and allowlisted fingerprints, without
// a store (the demo and tests use it). Generation is left 0.
func New(rs []store.Regex, allowed map[string]bool, key []byte) *Snapshot {
	set, errs := Compile(rs)
	if key != nil {
		set = set.WithMACKey(key)
	}
	actions := make(map[int64]string, len(rs))
	for _, r := range rs {
		actions[r.ID] = r.Action
	}
	return &Snapshot{Set: set, Skipped: errs, Allowlisted: len(allowed), actions: actions, allowed: allowed, keyed: key != nil}
}

// Action returns the stored action of a regex: store.ActionDelete or
// store.ActionMonitor (delete when unknown).
func (s *Snapshot) Action(id int64) string {
	if a := s.actions[id]; a != "" {
		return a
	}
	return store.ActionDelete
}

// Verdict is what a message's scan decided.
type Verdict struct {
	// Findings are the matches that count, each with the action it takes.
	Findings []store.Finding
	// Allowlisted counts matches whose value is allowlisted (not findings).
	Allowlisted int
	// Delete is true when at least one finding's action is delete.
	Delete bool
}

// Decide scans a normalised message (see detect.Normalize) and returns the
// findings that count. An allowlisted value is no finding. With monitor set
// (the daemon's monitor mode), every finding's action is monitor and the
// verdict never deletes.
func (s *Snapshot) Decide(text string, monitor bool) Verdict {
	matches := s.Set.ScanNormalized(text)
	var v Verdict
	if len(matches) == 0 {
		return v
	}
	v.Findings = make([]store.Finding, 0, len(matches))
	for _, m := range matches {
		if m.MAC != "" && s.allowed[m.MAC] {
			v.Allowlisted++
			continue
		}
		action := s.Action(m.RuleID)
		if monitor {
			action = store.ActionMonitor
		}
		v.Delete = v.Delete || action == store.ActionDelete
		v.Findings = append(v.Findings, store.Finding{RegexID: m.RuleID, Rule: m.Description, Excerpt: m.Excerpt,
			Start: m.Start, End: m.End, Action: action, MAC: m.MAC})
	}
	return v
}

// Keyed reports whether the snapshot fingerprints values, so that the
// allowlist applies.
func (s *Snapshot) Keyed() bool { return s.keyed }
