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
	"slices"
	"strings"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// Rule maps a stored regex to the detection rule the engine compiles.
func Rule(r store.Regex) detect.Rule {
	var lists []detect.Allowlist
	for _, a := range r.Allowlists {
		lists = append(lists, detect.Allowlist{Target: a.Target, Regexes: a.Regexes, Stopwords: a.Stopwords, And: a.And})
	}
	return detect.Rule{
		ID: r.ID, Pattern: r.Pattern, Description: r.Description,
		Validator: r.Validator, SecretGroup: r.SecretGroup, Entropy: r.Entropy,
		Keywords: r.Keywords, AllowPatterns: r.AllowPatterns, Stopwords: r.Stopwords, Allowlists: lists,
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

// CheckBreadth refuses, with a *detect.BreadthError, a regex that flags
// more than detect.MaxBreadth of securechat's ordinary-chat sample.
func CheckBreadth(r store.Regex) error {
	rule := Rule(r)
	rule.ID = 0
	return detect.CheckBreadth(rule)
}

// Cost returns a regex's program size (see detect.Cost).
func Cost(r store.Regex) (int, error) { return detect.Cost(Rule(r)) }

// SetCost returns what the enabled regexes cost together; regexes that do
// not compile count nothing.
func SetCost(rs []store.Regex) int {
	total := 0
	for _, r := range rs {
		if r.Enabled {
			if c, err := Cost(r); err == nil {
				total += c
			}
		}
	}
	return total
}

// Fits checks that adding r to the stored regexes keeps the set within
// detect.MaxSetProgram; the error matches detect.ErrSetTooLarge.
func Fits(stored []store.Regex, r store.Regex) error {
	c, err := Cost(r)
	if err != nil {
		return err
	}
	if total := SetCost(stored) + c; total > detect.MaxSetProgram {
		return detect.SetTooLargeError(total)
	}
	return nil
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
	generic map[int64]bool   // gitleaks rules whose id says generic
	allowed map[string]bool  // allowlisted value fingerprints
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
	generic := map[int64]bool{}
	for _, r := range rs {
		actions[r.ID] = r.Action
		if strings.HasPrefix(r.Source, "gitleaks:") && strings.Contains(strings.ToLower(r.Source), "generic") {
			generic[r.ID] = true
		}
	}
	return &Snapshot{Set: set, Skipped: errs, Allowlisted: len(allowed), actions: actions, generic: generic,
		allowed: allowed}
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

// Decide scans a normalised message (see detect.Normalize), and the decoded
// text of its base64, hex and percent-encoded segments (detect.ScanEncoded),
// and returns the findings that count: one per rule and secret, even when the
// message carries the secret twice (its text and its blocks). An allowlisted value
// is no finding. Findings whose spans overlap without being the same are
// fully masked, so that their excerpts cannot together reveal more than one
// would. With monitor set (the daemon's monitor mode), every finding's
// action is monitor and the verdict never deletes.
func (s *Snapshot) Decide(text string, monitor bool) Verdict {
	matches := append(s.Set.ScanNormalized(text), s.Set.ScanEncoded(text)...)
	var v Verdict
	if len(matches) == 0 {
		return v
	}
	v.Findings = make([]store.Finding, 0, len(matches))
	secrets := make([]string, 0, len(matches)) // secrets[i] is v.Findings[i]'s, for masking jointly
	seen := make(map[string]bool, len(matches))
	for _, m := range matches {
		if m.MAC != "" && s.allowed[m.MAC] {
			v.Allowlisted++
			continue
		}
		key := fmt.Sprintf("%d\x00%s", m.RuleID, detect.CanonicalValue(text[m.Start:m.End]))
		if m.Decoded { // the span is the encoded segment's; the secret is not in the text
			key = fmt.Sprintf("%d\x00decoded\x00%d\x00%d\x00%s\x00%s", m.RuleID, m.Start, m.End, m.Excerpt, m.MAC)
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		action := s.Action(m.RuleID)
		if monitor {
			action = store.ActionMonitor
		}
		v.Delete = v.Delete || action == store.ActionDelete
		v.Findings = append(v.Findings, store.Finding{RegexID: m.RuleID, Rule: m.Description, Excerpt: m.Excerpt,
			Start: m.Start, End: m.End, Action: action, MAC: m.MAC})
		secrets = append(secrets, m.Secret(text))
	}
	v.Findings, secrets = s.dropGeneric(text, v.Findings, secrets)
	v.Delete = false
	for _, f := range v.Findings {
		v.Delete = v.Delete || f.Action == store.ActionDelete
	}
	// Masked with every finding of the message taken into account: findings
	// whose spans overlap without being the same, and findings whose values
	// are parts of one text (detect.MaskJointly), are hidden entirely.
	hide := detect.MaskJointly(secrets)
	for i := range v.Findings {
		for j := range v.Findings {
			a, b := &v.Findings[i], &v.Findings[j]
			if i != j && a.Start < b.End && b.Start < a.End && (a.Start != b.Start || a.End != b.End) {
				hide[i] = true
			}
		}
	}
	for i := range v.Findings {
		if hide[i] {
			v.Findings[i].Excerpt = detect.Hide(secrets[i])
		}
	}
	return v
}

// dropGeneric drops, as gitleaks does, a finding of a generic rule (a
// gitleaks rule whose id contains "generic") when a specific rule's secret
// on the same line contains its secret: one finding per secret, the
// specific one.
func (s *Snapshot) dropGeneric(text string, fs []store.Finding, secrets []string) ([]store.Finding, []string) {
	if len(s.generic) == 0 || len(fs) < 2 {
		return fs, secrets
	}
	// Each finding's line, from the text's newlines found once, and the
	// specific findings grouped by line: linear in the text, and in the
	// findings of one line (a 40 KB line of a thousand generic and a
	// thousand specific findings cost seconds when each pair looked for
	// its line).
	var newlines []int
	for i := 0; ; {
		j := strings.IndexByte(text[i:], '\n')
		if j < 0 {
			break
		}
		newlines = append(newlines, i+j)
		i += j + 1
	}
	lineOf := func(i int) int { k, _ := slices.BinarySearch(newlines, i); return k }
	specific := map[int][]string{}
	for _, f := range fs {
		if !s.generic[f.RegexID] {
			l := lineOf(f.Start)
			specific[l] = append(specific[l], text[f.Start:f.End])
		}
	}
	keptSecrets := secrets[:0:0]
	out := fs[:0:0]
	for k, g := range fs {
		if s.generic[g.RegexID] {
			secret := text[g.Start:g.End]
			if slices.ContainsFunc(specific[lineOf(g.Start)], func(sp string) bool { return strings.Contains(sp, secret) }) {
				continue
			}
		}
		out = append(out, g)
		keptSecrets = append(keptSecrets, secrets[k])
	}
	return out, keptSecrets
}
