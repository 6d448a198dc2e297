package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

// A gitleaks configuration (v8), as much of it as securechat reads.
type gitleaksConfig struct {
	Title      string          `toml:"title"`
	Extend     *gitleaksExtend `toml:"extend"`
	Allowlist  *gitleaksAllow  `toml:"allowlist"`
	Allowlists []gitleaksAllow `toml:"allowlists"`
	Rules      []gitleaksRule  `toml:"rules"`
}

type gitleaksExtend struct {
	UseDefault    bool     `toml:"useDefault"`
	Path          string   `toml:"path"`
	DisabledRules []string `toml:"disabledRules"`
}

type gitleaksRule struct {
	ID          string          `toml:"id"`
	Description string          `toml:"description"`
	Regex       string          `toml:"regex"`
	Path        string          `toml:"path"`
	SecretGroup int             `toml:"secretGroup"`
	Entropy     float64         `toml:"entropy"`
	Keywords    []string        `toml:"keywords"`
	Allowlist   *gitleaksAllow  `toml:"allowlist"`
	Allowlists  []gitleaksAllow `toml:"allowlists"`
	// Composite rules: other rules that must match near this one.
	Required   []map[string]any `toml:"required"`
	SkipReport bool             `toml:"skipReport"`
}

type gitleaksAllow struct {
	Description string   `toml:"description"`
	Condition   string   `toml:"condition"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	Stopwords   []string `toml:"stopwords"`
	Paths       []string `toml:"paths"`
	Commits     []string `toml:"commits"`
	TargetRules []string `toml:"targetRules"`
}

// importItem is one rule read from a file, ready to store, with what the
// reader had to say about it.
type importItem struct {
	name     string // the gitleaks id, or "line N"
	rule     store.Regex
	warnings []string
	skip     string // why it cannot be imported; "" if it can
	// A gitleaks override that gives only an id and allowlists: they are
	// added to the stored rule of that id.
	override []store.Allowlist
	// disable: [extend] disabledRules names this gitleaks id.
	disable bool
}

// importResult counts what an import did.
type importResult struct {
	Imported, Updated, Present, Skipped int
}

// convertAllow carries a gitleaks allowlist over to chat: its regexes keep
// their target (secret, match, or line: the message line that holds the
// match) and its condition. A part about paths or commits never holds in
// chat: with condition AND the allowlist could never apply, so it is left
// out (why says so); with OR its other parts still apply (a warning says
// what was left out).
func convertAllow(a gitleaksAllow) (al store.Allowlist, why string, warnings []string) {
	and := strings.EqualFold(a.Condition, "AND")
	pathOrCommit := len(a.Paths) > 0 || len(a.Commits) > 0
	switch {
	case and && pathOrCommit:
		return al, "its condition is AND and it needs a path or a commit, which chat messages never have", nil
	case len(a.Regexes) == 0 && len(a.Stopwords) == 0:
		return al, "it has only paths or commits, which chat messages never have", nil
	case pathOrCommit:
		warnings = append(warnings, "allowlist paths and commits are left out (messages have neither); its regexes and stopwords apply")
	}
	target := a.RegexTarget
	switch target {
	case "", detect.TargetSecret, detect.TargetMatch, detect.TargetLine:
	default:
		warnings = append(warnings, fmt.Sprintf("allowlist regexTarget %q is unknown; its regexes are applied to the secret", target))
		target = ""
	}
	if target == detect.TargetSecret {
		target = ""
	}
	return store.Allowlist{Target: target, Regexes: a.Regexes, Stopwords: a.Stopwords, And: and}, "", warnings
}

// convertAllows carries a rule's allowlists over (see convertAllow) and
// says what it left out.
func convertAllows(lists []gitleaksAllow) (out []store.Allowlist, warnings []string) {
	for _, a := range lists {
		al, why, warns := convertAllow(a)
		warnings = append(warnings, warns...)
		if why != "" {
			warnings = append(warnings, "an allowlist is left out: "+why)
			continue
		}
		out = append(out, al)
	}
	return out, warnings
}

// Import formats.
const (
	formatAuto     = "auto"
	formatGitleaks = "gitleaks"
	formatLines    = "lines"
)

// tomlLike matches a line only TOML would have: a table header ([extend],
// [[ rules ]], [rules.allowlist]) or a key assignment. As a pattern, a table
// header is a character class that matches nearly every message.
var tomlLike = regexp.MustCompile(`^\s*(\[\[?\s*[A-Za-z0-9_."-]+(\s*\.\s*[A-Za-z0-9_"-]+)*\s*\]\]?|[A-Za-z0-9_-]+\s*=\s*\S.*)\s*$`)

// readImport parses a gitleaks configuration or a plain list of patterns
// (one per line, optionally followed by a tab and a description). With
// format auto, a file named *.toml, or any file that parses as TOML, is a
// gitleaks configuration; a file with TOML-looking lines that does not parse
// is refused with the parse error rather than read as patterns (each table
// header would become a rule matching nearly every message).
func readImport(body []byte, name, format string) ([]importItem, []string, error) {
	switch format {
	case formatGitleaks:
		return readGitleaks(body, name)
	case formatLines:
		return readPlain(body, name)
	case formatAuto, "":
	default:
		return nil, nil, fmt.Errorf("--format %q: use gitleaks, lines or auto", format)
	}
	if strings.EqualFold(filepath.Ext(name), ".toml") {
		return readGitleaks(body, name)
	}
	var probe map[string]any
	md, err := toml.Decode(string(body), &probe)
	if err == nil && len(md.Keys()) > 0 {
		return readGitleaks(body, name)
	}
	for n, line := range strings.Split(string(body), "\n") {
		if tomlLike.MatchString(strings.TrimRight(line, "\r")) {
			why := "it does not parse as TOML"
			var perr toml.ParseError
			if errors.As(err, &perr) {
				why = fmt.Sprintf("TOML line %d: %s", perr.Position.Line, perr.Message)
			}
			return nil, nil, &hintError{
				err:  fmt.Errorf("%s looks like a gitleaks (TOML) config (line %d: %q), but %s; nothing was imported", name, n+1, truncate(strings.TrimSpace(line), 60), why),
				hint: "fix the TOML, or pass --format lines if it really is a list of patterns (each line a regex)"}
		}
	}
	return readPlain(body, name)
}

func readPlain(body []byte, name string) ([]importItem, []string, error) {
	lines, err := detect.ReadPatterns(bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	items := make([]importItem, len(lines))
	for i, l := range lines {
		items[i] = importItem{
			name: fmt.Sprintf("line %d", l.Line),
			rule: store.Regex{Pattern: l.Pattern, Description: l.Description, Enabled: true, Source: "file:" + filepath.Base(name)},
		}
	}
	return items, nil, nil
}

func readGitleaks(body []byte, name string) ([]importItem, []string, error) {
	var cfg gitleaksConfig
	md, err := toml.Decode(string(body), &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, nil, fmt.Errorf("%s: line %d: %s", name, perr.Position.Line, perr.Message)
		}
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	var notes []string
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		notes = append(notes, "ignored keys securechat does not use: "+strings.Join(keys, ", "))
	}
	if e := cfg.Extend; e != nil {
		if e.UseDefault {
			notes = append(notes, "[extend] useDefault = true: this config extends gitleaks' default rules, which securechat does not ship; "+
				"import gitleaks' own config (config/gitleaks.toml of a gitleaks release) too, or add securechat's builtins ('securechat regex builtins'); the rest of this file is imported")
		}
		if e.Path != "" {
			notes = append(notes, fmt.Sprintf("[extend] path = %q is not followed: import that file too; the rest of this file is imported", e.Path))
		}
	}
	global := cfg.Allowlists
	if cfg.Allowlist != nil {
		global = append(global, *cfg.Allowlist)
	}
	var globalLists []store.Allowlist
	var globalTargets [][]string
	for _, a := range global {
		al, why, _ := convertAllow(a)
		switch {
		case why != "":
			notes = append(notes, "a global allowlist is left out: "+why)
		case len(a.Paths) > 0 || len(a.Commits) > 0:
			notes = append(notes, "a global allowlist's paths and commits are left out (messages have neither); its regexes and stopwords apply")
		}
		if why == "" {
			globalLists, globalTargets = append(globalLists, al), append(globalTargets, a.TargetRules)
		}
	}
	var items []importItem
	if e := cfg.Extend; e != nil {
		for _, id := range e.DisabledRules {
			items = append(items, importItem{name: id, disable: true})
		}
	}
	for _, r := range cfg.Rules {
		it := importItem{name: r.ID}
		lists := r.Allowlists
		if r.Allowlist != nil {
			lists = append(lists, *r.Allowlist)
		}
		switch {
		case r.ID == "":
			it.name = "(no id)"
			it.skip = "the rule has no id"
		case r.Regex == "" && r.Path == "" && len(lists) > 0:
			// An override of a rule imported before (gitleaks [extend]).
			var warns []string
			it.override, warns = convertAllows(lists)
			it.warnings = append(it.warnings, warns...)
			if len(it.override) == 0 {
				it.skip = "an override whose allowlists all need a path or commit"
			}
			items = append(items, it)
			continue
		case r.Regex == "" && r.Path != "":
			it.skip = "a path-only rule: securechat scans messages, not files"
		case r.Regex == "":
			it.skip = "the rule has no regex"
		}
		if it.skip != "" {
			items = append(items, it)
			continue
		}
		desc := r.Description
		if desc == "" {
			desc = r.ID
		}
		it.rule = store.Regex{
			Pattern: r.Regex, Description: desc, Enabled: true, Source: "gitleaks:" + r.ID,
			SecretGroup: r.SecretGroup, Entropy: r.Entropy, Keywords: r.Keywords,
		}
		switch {
		case r.Path != "":
			// gitleaks never runs it without a matching file path; run on
			// every message it would be broader than its author meant.
			it.rule.Enabled = false
			it.rule.DisabledReason = fmt.Sprintf("imported disabled: gitleaks runs it only on files whose path matches %q, and chat messages have no path", detect.Shorten(r.Path, 60))
		case len(r.Required) > 0 || r.SkipReport:
			it.rule.Enabled = false
			it.rule.DisabledReason = "imported disabled: a composite rule ([[rules.required]] / skipReport), which securechat does not run; alone it would fire where gitleaks would not"
		}
		if it.rule.DisabledReason != "" {
			it.warnings = append(it.warnings, it.rule.DisabledReason)
		}
		if it.rule.SecretGroup == 0 {
			// gitleaks takes the first capture group that matched as the
			// secret (the first non-empty one), not group 1.
			if n, err := detect.NumGroups(r.Regex); err == nil && n > 0 {
				it.rule.SecretGroup = detect.FirstGroup
			}
		}
		own, warns := convertAllows(lists)
		it.rule.Allowlists = append(it.rule.Allowlists, own...)
		it.warnings = append(it.warnings, warns...)
		for i, al := range globalLists {
			if len(globalTargets[i]) == 0 || slices.Contains(globalTargets[i], r.ID) {
				it.rule.Allowlists = append(it.rule.Allowlists, al)
			}
		}
		items = append(items, it)
	}
	return items, notes, nil
}

// runImport checks each item as the daemon will compile it, stores the ones
// that can be imported and reports each one. Items whose pattern is stored
// already count as present, so importing the same file again changes
// nothing.
func runImport(ctx context.Context, s *store.Store, items []importItem, notes []string, w io.Writer, dryRun bool, actor string) (importResult, error) {
	var res importResult
	for _, n := range notes {
		fmt.Fprintf(w, "note      %s\n", n)
	}
	total := 0 // what the enabled rules cost, stored and imported so far
	if s != nil {
		stored, err := s.Regexes(ctx)
		if err != nil {
			return res, err
		}
		total = ruleset.SetCost(stored)
	}
	for _, it := range items {
		if it.skip == "" && !it.disable && len(it.override) == 0 {
			if err := ruleset.Validate(it.rule); err != nil {
				it.skip = err.Error()
			}
		}
		cost := 0 // a rule imported disabled costs nothing until it is enabled
		if it.skip == "" && !it.disable && len(it.override) == 0 && it.rule.Enabled {
			cost, _ = ruleset.Cost(it.rule)
			if total+cost > detect.MaxSetProgram {
				it.skip = detect.SetTooLargeError(total + cost).Error()
			}
		}
		if it.skip != "" {
			res.Skipped++
			fmt.Fprintf(w, "skipped   %s: %s\n", it.name, it.skip)
			continue
		}
		for _, warn := range slices.Compact(slices.Sorted(slices.Values(it.warnings))) {
			fmt.Fprintf(w, "warning   %s: %s\n", it.name, warn)
		}
		switch {
		case it.disable && dryRun:
			fmt.Fprintf(w, "would disable %s ([extend] disabledRules)\n", it.name)
			continue
		case len(it.override) > 0 && dryRun:
			fmt.Fprintf(w, "would add %d allowlist(s) to %s\n", len(it.override), it.name)
			continue
		case it.disable || len(it.override) > 0:
			stored, err := s.RegexBySource(ctx, "gitleaks:"+it.name)
			if errors.Is(err, store.ErrNotFound) {
				what := "to add its allowlist to"
				if it.disable {
					what = "to disable ([extend] disabledRules)"
				}
				fmt.Fprintf(w, "not found %s: no stored rule was imported under this gitleaks id %s\n", it.name, what)
				continue
			}
			if err != nil {
				return res, err
			}
			if it.disable {
				if !stored.Enabled {
					fmt.Fprintf(w, "present   %s: regex %d is disabled already\n", it.name, stored.ID)
					continue
				}
				n, err := s.SetRegexEnabled(ctx, stored.ID, false, actor)
				if err != nil {
					return res, err
				}
				fmt.Fprintf(w, "disabled  %s → regex %d ([extend] disabledRules)%s\n", it.name, stored.ID, cancelledNote(n))
				continue
			}
			added, err := s.AddAllowlists(ctx, stored.ID, it.override)
			if err != nil {
				return res, err
			}
			if added == 0 {
				fmt.Fprintf(w, "present   %s: regex %d has its allowlist(s) already\n", it.name, stored.ID)
				continue
			}
			fmt.Fprintf(w, "updated   %s → regex %d: %d allowlist(s) added\n", it.name, stored.ID, added)
			continue
		}
		if stored, ok := storedAs(ctx, s, it.rule); ok && stored.Pattern != it.rule.Pattern {
			// The same gitleaks id with another regex: the file's is the
			// rule now (gitleaks' own upgrades do this). Its old findings
			// stop justifying deletions.
			if dryRun {
				res.Updated++
				fmt.Fprintf(w, "would update %s → regex %d: its regex changed\n", it.name, stored.ID)
				continue
			}
			n, err := s.RedefineRule(ctx, stored.ID, it.rule, actor)
			if err != nil {
				return res, err
			}
			res.Updated++
			fmt.Fprintf(w, "updated   %s → regex %d: its regex changed (action %s kept)%s\n", it.name, stored.ID, stored.Action, cancelledNote(n))
			continue
		}
		if dryRun {
			res.Imported++
			fmt.Fprintf(w, "would import %s (%s)\n", it.name, it.rule.Action)
			continue
		}
		r, err := s.AddRuleAs(ctx, it.rule, actor)
		var dup *store.DuplicateError
		switch {
		case errors.As(err, &dup):
			res.Present++
			fmt.Fprintf(w, "present   %s: already regex %d%s\n", it.name, dup.ID, actionNote(ctx, s, dup.ID, it.rule.Action))
		case err != nil:
			return res, err
		default:
			res.Imported++
			total += cost
			fmt.Fprintf(w, "imported  %s → regex %d (%s)\n", it.name, r.ID, r.Action)
		}
	}
	return res, nil
}

// storedAs returns the stored rule imported under the same gitleaks id as
// r, if any.
func storedAs(ctx context.Context, s *store.Store, r store.Regex) (store.Regex, bool) {
	if s == nil || !strings.HasPrefix(r.Source, "gitleaks:") {
		return store.Regex{}, false
	}
	stored, err := s.RegexBySource(ctx, r.Source)
	return stored, err == nil
}

// actionNote says, for a rule stored already whose action is not the one
// asked for, that nothing changed and how to change it: an import or
// --builtin all never switches a stored rule to delete by itself.
func actionNote(ctx context.Context, s *store.Store, id int64, want string) string {
	r, err := s.Regex(ctx, id)
	if err != nil || want == "" || r.Action == want {
		return ""
	}
	return fmt.Sprintf(" (its action stays %s: to change it, run 'securechat regex update %d --action %s')", r.Action, id, want)
}

// backtestImport runs a back-test of the rules a file would import (those
// that would be enabled), storing nothing.
func backtestImport(ctx context.Context, a *app, items []importItem, o backtestOptions) error {
	var rules []store.Regex
	names := map[int64]string{}
	for _, it := range items {
		if it.disable || len(it.override) > 0 {
			continue // they change stored rules; there is nothing to back-test
		}
		if it.skip == "" && !it.rule.Enabled {
			it.skip = it.rule.DisabledReason
		}
		if it.skip == "" {
			if err := ruleset.Validate(it.rule); err != nil {
				it.skip = err.Error()
			}
		}
		if it.skip != "" {
			fmt.Fprintf(a.Stderr, "skipped   %s: %s\n", it.name, it.skip)
			continue
		}
		r := it.rule
		r.ID = int64(len(rules) + 1)
		names[r.ID] = it.name
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return errors.New("no rule of the file can be imported enabled, so there is nothing to back-test")
	}
	snap := ruleset.New(rules, nil, nil)
	for _, err := range snap.Skipped {
		fmt.Fprintf(a.Stderr, "skipped   %v\n", err)
	}
	fmt.Fprintf(a.Stderr, "Back-testing %d rule(s) of the file; nothing is stored.\n", snap.Set.Len())
	return runBacktest(ctx, a, snap, o, names)
}

// skipBroad marks as skipped the rules that flag more than
// detect.MaxBreadth of securechat's ordinary-chat sample: an import never
// creates a rule that would delete ordinary messages (unless --force).
func skipBroad(items []importItem) {
	for i := range items {
		it := &items[i]
		if it.skip != "" || it.disable || len(it.override) > 0 {
			continue
		}
		// A rule that does not compile is left to runImport, which says why.
		var be *detect.BreadthError
		if err := ruleset.CheckBreadth(it.rule); errors.As(err, &be) {
			it.skip = err.Error()
		}
	}
}
