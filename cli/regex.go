package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/service"
	"github.com/securechat/securechat/store"
)

func newRegexCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "regex",
		Aliases: []string{"regexes", "rule", "rules"},
		Short:   "Manage the patterns messages are matched against",
		Long: `Manage the regular expressions securechat matches messages against.

Patterns use Go's RE2 syntax (https://github.com/google/re2/wiki/Syntax): no lookaround,
no backreferences, and matching time is linear in the message length. A running daemon
picks up changes within a couple of seconds, no restart needed.`,
	}
	groupCmd(cmd)
	cmd.AddCommand(newRegexAddCmd(a), newRegexListCmd(a), newRegexRmCmd(a), newRegexTestCmd(a),
		newRegexEnableCmd(a, true), newRegexEnableCmd(a, false),
		newRegexImportCmd(a), newRegexBuiltinsCmd(a), newRegexUpdateCmd(a))
	return cmd
}

type regexAddOptions struct {
	description string
	builtin     string
	validator   string
	action      string
	trial       time.Duration
	json        bool
	force       bool
}

// maxTrial bounds a trial: longer is a monitor rule someone forgot.
const maxTrial = 90 * 24 * time.Hour

func newRegexAddCmd(a *app) *cobra.Command {
	var o regexAddOptions
	cmd := &cobra.Command{
		Use:   "add PATTERN",
		Short: "Add a pattern and print its id",
		Long: `Add a pattern. It is checked first: a pattern that does not compile, or that can match
the empty string (and so would delete every message), is refused with the reason.

The new id is printed on stdout, so scripts can keep it: id=$(securechat regex add ...).`,
		Example: `  securechat regex add '.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*' --description "Maestro cards"
  securechat regex add 'AKIA[A-Z2-7]{16}' -d "AWS access key id"
  securechat regex add '\b[0-9]{13,19}\b' --validator luhn -d "Card numbers"
  securechat regex add --builtin payment-card        # see: securechat regex builtins
  securechat regex add --builtin all                 # every builtin, in monitor: watch, then 'regex update ID --action delete'
  securechat regex add 'acme_[a-z0-9]{32}' --trial 24h  # records only for a day, then deletes
  securechat regex add -d "PEM keys" -- '-----BEGIN [A-Z ]*PRIVATE KEY-----'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rule store.Regex
			switch {
			case o.builtin != "" && len(args) > 0:
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("give either PATTERN or --builtin NAME, not both")}
			case o.builtin == "all" && cmd.Flags().Changed("trial"):
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--trial applies to one rule; --builtin all adds every builtin in monitor already (switch each with 'securechat regex update ID --action delete')")}
			case o.builtin == "all":
				action := store.ActionMonitor // in bulk, rules start by watching
				if cmd.Flags().Changed("action") {
					if err := checkAction(o.action); err != nil {
						return err
					}
					action = o.action
				}
				return a.addAllBuiltins(cmd, action)
			case o.builtin != "":
				b, ok := detect.LookupBuiltin(o.builtin)
				if !ok {
					return fmt.Errorf("no builtin rule %q: 'securechat regex builtins' lists them", o.builtin)
				}
				rule = ruleset.FromBuiltin(b)
				if o.description != "" {
					rule.Description = o.description
				}
			case len(args) == 1:
				rule = store.Regex{Pattern: args[0], Description: o.description, Enabled: true, Validator: o.validator}
				if err := detect.Validate(rule.Pattern); err != nil {
					return err // names the pattern
				}
				if err := ruleset.Validate(rule); err != nil {
					return err
				}
				if !o.force {
					if err := ruleset.CheckBreadth(rule); err != nil {
						return fmt.Errorf("pattern %q is not usable: %w", detect.Shorten(rule.Pattern, 60), err)
					}
				}
			default:
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("give a PATTERN, or --builtin NAME")}
			}
			if err := checkAction(o.action); err != nil {
				return err
			}
			rule.Action = o.action
			if cmd.Flags().Changed("trial") {
				switch {
				case o.trial < time.Minute || o.trial > maxTrial:
					return fmt.Errorf("--trial %s: use 1m to %s", o.trial, maxTrial)
				case o.action == store.ActionMonitor:
					return &usageError{cmd: cmd.CommandPath(), err: errors.New("--trial makes the rule delete when the trial ends; it cannot be used with --action monitor")}
				}
				end := a.Now().Add(o.trial).UTC().Truncate(time.Second)
				rule.Action, rule.TrialUntil = store.ActionMonitor, &end
			}
			s, err := a.openStore(cmd.Context(), openCreate)
			if err != nil {
				return err
			}
			defer s.Close()
			stored, err := s.Regexes(cmd.Context())
			if err != nil {
				return err
			}
			if err := ruleset.Fits(stored, rule); err != nil {
				return err
			}
			r, err := a.service(s).AddRule(cmd.Context(), a.actor(), rule)
			if err != nil {
				var dup *store.DuplicateError
				if errors.As(err, &dup) {
					return fmt.Errorf("%w: see it with 'securechat regex list'", err)
				}
				return err
			}
			if o.json {
				return writeJSON(a.Stdout, r)
			}
			fmt.Fprintln(a.Stdout, r.ID)
			if r.TrialUntil != nil {
				fmt.Fprintf(a.Stderr, "Added regex %d in trial: it records and alerts, and deletes nothing, until %s; then a running daemon switches it to delete and tells the alert channel. Watch it with 'securechat regex list' (HITS) and 'securechat leaks list --regex %d'; end the trial early with 'securechat regex update %d --action delete' (or --action monitor to keep it watching).\n",
					r.ID, r.TrialUntil.Format(time.RFC3339), r.ID, r.ID)
				return nil
			}
			fmt.Fprintf(a.Stderr, "Added regex %d.\n", r.ID)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.description, "description", "d", "", "what the pattern finds (shown in leaks and logs)")
	cmd.Flags().StringVar(&o.builtin, "builtin", "", "add a curated rule by name instead of a PATTERN (see 'securechat regex builtins'); all adds every one, in monitor unless --action delete")
	cmd.Flags().BoolVar(&o.force, "force", false, "add a pattern even though it flags more than 2% of ordinary chat")
	cmd.Flags().StringVar(&o.validator, "validator", "", "drop matches that fail a check: "+strings.Join(detect.ValidatorNames(), ", "))
	cmd.Flags().StringVar(&o.action, "action", "delete", "what a match does: delete, or monitor (record and alert, do not delete)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the new regex as JSON")
	cmd.Flags().DurationVar(&o.trial, "trial", 0, "record and alert only for this long (24h, 72h), then delete: try the rule before it bites")
	return cmd
}

// addAllBuiltins adds every builtin rule with action, reporting each one as
// added or present.
func (a *app) addAllBuiltins(cmd *cobra.Command, action string) error {
	s, err := a.openStore(cmd.Context(), openCreate)
	if err != nil {
		return err
	}
	defer s.Close()
	added := 0
	for _, b := range detect.Builtins() {
		rule := ruleset.FromBuiltin(b)
		rule.Action = action
		stored, err := s.Regexes(cmd.Context())
		if err != nil {
			return err
		}
		if err := ruleset.Fits(stored, rule); err != nil {
			return fmt.Errorf("builtin %s: %w", b.Name, err)
		}
		r, err := a.service(s).AddRule(cmd.Context(), a.actor(), rule)
		var dup *store.DuplicateError
		switch {
		case errors.As(err, &dup):
			fmt.Fprintf(a.Stdout, "present   %s: already regex %d%s\n", b.Name, dup.ID, actionNote(cmd.Context(), s, dup.ID, action))
		case err != nil:
			return err
		default:
			added++
			fmt.Fprintf(a.Stdout, "added     %s → regex %d (%s)\n", b.Name, r.ID, action)
		}
	}
	fmt.Fprintf(a.Stderr, "%d builtin rule(s) added, in %s.", added, action)
	if action == store.ActionMonitor {
		fmt.Fprint(a.Stderr, " They record and alert, and delete nothing: watch 'securechat leaks stats', then 'securechat regex update ID --action delete'.")
	}
	fmt.Fprintln(a.Stderr)
	return nil
}

func checkAction(action string) error {
	if action != store.ActionDelete && action != store.ActionMonitor {
		return fmt.Errorf("--action %q: use delete, or monitor to record and alert without deleting", action)
	}
	return nil
}

func newRegexUpdateCmd(a *app) *cobra.Command {
	var action, description string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change a regex's action or description",
		Long: `Change a regex's action or description. Roll a new rule out safely: add it with
--action monitor, watch 'securechat leaks list --regex ID' and 'securechat leaks stats',
then switch it to delete. A running daemon applies the change within a couple of seconds.`,
		Example: `  securechat regex update 7 --action delete
  securechat regex update 7 --description "Visa cards (Luhn)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			var u store.RegexUpdate
			if cmd.Flags().Changed("action") {
				if err := checkAction(action); err != nil {
					return err
				}
				u.Action = &action
			}
			if cmd.Flags().Changed("description") {
				u.Description = &description
			}
			if u.Action == nil && u.Description == nil {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("nothing to change: give --action or --description")}
			}
			s, err := a.openStore(cmd.Context(), openWrite)
			if err != nil {
				return err
			}
			defer s.Close()
			r, c, err := a.service(s).UpdateRule(cmd.Context(), a.actor(), ids[0], u)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.Stdout, r)
			}
			if !c.Done {
				by := ""
				if c.By != "" {
					by = fmt.Sprintf(" (since %s, by %s)", formatTime(c.At), c.By)
				}
				fmt.Fprintf(a.Stderr, "Regex %d's action is %s already%s; nothing changed.\n", r.ID, r.Action, by)
				return nil
			}
			note := cancelledNote(c.Cancelled)
			if c.Held > 0 && r.Action == store.ActionDelete {
				note += fmt.Sprintf(" %d deletion(s) of this rule stay held: review with 'securechat leaks list --regex %d --status held', then 'securechat leaks resume --rule %d'.", c.Held, r.ID, r.ID)
			}
			fmt.Fprintf(a.Stderr, "Updated regex %d: action %s.%s\n", r.ID, r.Action, note)
			return nil
		},
	}
	cmd.Flags().StringVar(&action, "action", "", "delete, or monitor (record and alert, do not delete)")
	cmd.Flags().StringVarP(&description, "description", "d", "", "new description")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the updated regex as JSON")
	return cmd
}

func newRegexBuiltinsCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "builtins",
		Short: "List the curated rules 'regex add --builtin' can add",
		Long: `List securechat's curated rules. Each one ships with samples it must and must not match
(checked by the test suite); some carry a validator that drops look-alikes, such as the
Luhn check of payment-card: 4111 1111 1111 1111 is a leak, 4111 1111 1111 1112 is not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bs := detect.Builtins()
			if asJSON {
				type item struct {
					Name        string `json:"name"`
					Description string `json:"description"`
					Pattern     string `json:"pattern"`
					Validator   string `json:"validator,omitempty"`
				}
				out := make([]item, len(bs))
				for i, b := range bs {
					out[i] = item{b.Name, b.Description, b.Pattern, b.Validator}
				}
				return writeJSON(a.Stdout, out)
			}
			t := newTable(a.Stdout, "NAME", "DESCRIPTION", "CHECK")
			for _, b := range bs {
				check := b.Validator
				if check == "" && (len(b.Stopwords) > 0 || len(b.Allow) > 0 || b.Entropy > 0) {
					check = "filters"
				}
				if check == "" {
					check = "-"
				}
				t.row(b.Name, b.Description, check)
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(a.Stderr, "Add one with: securechat regex add --builtin NAME")
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRegexImportCmd(a *app) *cobra.Command {
	var dryRun, force bool
	var format, action string
	var bt backtestOptions
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import rules from a gitleaks config or a pattern list",
		Long: `Import rules from FILE ("-" for stdin):

  - a gitleaks configuration (a *.toml file, or one that parses as TOML; --format gitleaks
    forces it): id, description, regex, secretGroup,
    entropy and keywords are kept, and so are allowlist regexes and stopwords (global and
    per rule). What has no meaning for chat messages (paths, commits, path-only rules) is
    reported and left out; a regex that is not valid RE2 is skipped with the reason.
  - otherwise a plain list (--format lines forces it): one pattern per line, optionally a
    tab and a description; blank lines and lines starting with # are skipped. A file with
    TOML-looking lines that does not parse as TOML is refused, never read as patterns.

Imported rules start in monitor (they record and alert, and delete nothing) unless
--action delete: a file of rules is best watched with 'securechat leaks stats' before it
enforces. Each rule is reported as imported, present (stored already) or skipped, so
importing the same file again changes nothing. Exit status 2 if any rule was skipped.`,
		Example: `  securechat regex import gitleaks.toml
  securechat regex import --dry-run patterns.txt
  securechat regex import gitleaks.toml --backtest 30d    # what it would flag; stores nothing
  securechat regex import --action delete reviewed-rules.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			var err error
			if args[0] == "-" {
				body, err = io.ReadAll(a.Stdin)
			} else {
				body, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read rules: %w", err)
			}
			if err := checkAction(action); err != nil {
				return err
			}
			items, notes, err := readImport(body, args[0], format)
			if err != nil {
				return err
			}
			for i := range items {
				items[i].rule.Action = action
			}
			if !force {
				skipBroad(items)
			}
			if len(items) == 0 {
				for _, n := range notes {
					fmt.Fprintf(a.Stdout, "note      %s\n", n)
				}
				if bytes.Contains(body, []byte("useDefault")) {
					return &hintError{err: fmt.Errorf("%s has no rules of its own: it extends gitleaks' default rules, which securechat does not ship", args[0]),
						hint: "import gitleaks' own config (config/gitleaks.toml of a gitleaks release), or add securechat's builtins: securechat regex builtins"}
				}
				return fmt.Errorf("%s holds no rules", args[0])
			}
			if bt.history != "" {
				return backtestImport(cmd.Context(), a, items, bt)
			}
			var s *store.Store
			if !dryRun {
				if s, err = a.openStore(cmd.Context(), openCreate); err != nil {
					return err
				}
				defer s.Close()
			}
			res, err := runImport(cmd.Context(), s, items, notes, a.Stdout, dryRun, a.actor().String())
			if err != nil {
				return err
			}
			updated := ""
			if res.Updated > 0 {
				updated = fmt.Sprintf("%d updated, ", res.Updated)
			}
			fmt.Fprintf(a.Stderr, "%d imported, %s%d already present, %d skipped.\n", res.Imported, updated, res.Present, res.Skipped)
			if res.Imported > 0 && action == store.ActionMonitor && !dryRun {
				fmt.Fprintln(a.Stderr, "The imported rules are in monitor: they record and alert, and delete nothing. Watch 'securechat leaks stats', then 'securechat regex update ID --action delete'.")
			}
			if res.Skipped > 0 {
				return fmt.Errorf("%d rule(s) skipped; see the reasons above", res.Skipped)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check and report, store nothing")
	cmd.Flags().BoolVar(&force, "force", false, "import rules even though they flag more than 2% of ordinary chat (they are skipped otherwise)")
	cmd.Flags().StringVar(&bt.history, "backtest", "", "store nothing: read Slack's history this far back (30d, a date) and report what the file's rules would flag")
	bt.flags(cmd.Flags())
	cmd.Flags().StringVar(&action, "action", store.ActionMonitor, "what the imported rules do: monitor (record and alert; the default for rules added in bulk) or delete")
	cmd.Flags().StringVar(&format, "format", formatAuto, "gitleaks (TOML), lines (one pattern per line), or auto: a *.toml file, or one that parses as TOML, is gitleaks")
	return cmd
}

func newRegexListCmd(a *app) *cobra.Command {
	var asJSON, noisy bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the patterns, with their hits and false-positive reports",
		Long: `List the patterns with what they found: HITS counts their leaks, REPORTS the leaks their
authors reported "Not a secret" from the notice, and FP% the share of the hits reported so.
A rule with a high share is noisy: pause it (securechat regex update ID --action monitor)
and refine it. --noisy lists the noisiest first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context(), openRead)
			if err != nil {
				return err
			}
			defer s.Close()
			rs, err := a.service(s).Rules(cmd.Context())
			if err != nil {
				return err
			}
			if !noisy {
				slices.SortFunc(rs, func(a, b service.RuleView) int { return cmp.Compare(a.ID, b.ID) })
			}
			return printList(a, asJSON, rs, "No regexes yet. Add one with: securechat regex add PATTERN --description TEXT", func(rs []service.RuleView) error {
				t := newTable(a.Stdout, "ID", "PATTERN", "DESCRIPTION", "ACTION", "SOURCE", "ENABLED", "HITS", "REPORTS", "FP%", "UPDATED")
				var reasons []string
				for _, r := range rs {
					enabled := "yes"
					if !r.Enabled {
						enabled = "no"
					}
					if r.DisabledReason != "" {
						enabled = "no (see below)"
						reasons = append(reasons, fmt.Sprintf("regex %d was disabled by securechat: %s", r.ID, r.DisabledReason))
					}
					if r.TrippedReason != "" {
						reasons = append(reasons, fmt.Sprintf("regex %d was switched to monitor by the %s; resume with: securechat regex update %d --action delete", r.ID, r.TrippedReason, r.ID))
					}
					source := r.Source
					if source == "" {
						source = "-"
					}
					action := r.Action
					if r.TrialUntil != nil {
						action = "trial"
						reasons = append(reasons, fmt.Sprintf("regex %d is in trial: it records only until %s, then deletes (end it now: securechat regex update %d --action delete|monitor)",
							r.ID, r.TrialUntil.Format(time.RFC3339), r.ID))
					}
					t.row(strconv.FormatInt(r.ID, 10), truncate(r.Pattern, 60), truncate(r.Description, 40), action, truncate(source, 30), enabled,
						strconv.Itoa(r.Leaks), strconv.Itoa(r.NotSecret), r.ShareText(), formatTime(r.UpdatedAt))
				}
				if err := t.flush(); err != nil {
					return err
				}
				for _, r := range reasons {
					fmt.Fprintln(a.Stderr, r)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&noisy, "noisy", false, "the rules with the highest false-positive share first")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (an array of objects)")
	return cmd
}

// forEachID runs f for every id in args against the store, printing what f
// reports on stderr. Every id is tried; the errors are returned together.
func (a *app) forEachID(cmd *cobra.Command, args []string, f func(ctx context.Context, s *store.Store, id int64) (string, error)) error {
	ids, err := parseIDs(args)
	if err != nil {
		return err
	}
	s, err := a.openStore(cmd.Context(), openWrite)
	if err != nil {
		return err
	}
	defer s.Close()
	var errs []error
	for _, id := range ids {
		done, err := f(cmd.Context(), s, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(a.Stderr, done)
	}
	return errors.Join(errs...)
}

func parseIDs(args []string) ([]int64, error) {
	ids := make([]int64, len(args))
	for i, s := range args {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not an id: ids are positive numbers, as the list commands show them", s)
		}
		ids[i] = id
	}
	return ids, nil
}

func newRegexRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove patterns",
		Long: `Remove patterns by id. Leaks they found stay in the log with the regex's id and
description. Queued deletions that no other enforcing rule justifies are cancelled, and the
count is printed. Every id is tried; the command fails if any of them did not exist.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachID(cmd, args, func(ctx context.Context, s *store.Store, id int64) (string, error) {
				n, err := a.service(s).RemoveRule(ctx, a.actor(), id)
				return fmt.Sprintf("Removed regex %d.%s", id, cancelledNote(n)), err
			})
		},
	}
}

func newRegexEnableCmd(a *app, enable bool) *cobra.Command {
	use, short, done := "enable ID...", "Enable patterns", "Enabled"
	if !enable {
		use, short, done = "disable ID...", "Disable patterns without removing them", "Disabled"
	}
	long := "Enable patterns by id; a pattern securechat disabled itself loses its reason."
	if !enable {
		long = "Disable patterns by id. Queued deletions that no other enforcing rule justifies are\ncancelled, and the count is printed."
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachID(cmd, args, func(ctx context.Context, s *store.Store, id int64) (string, error) {
				n, err := a.service(s).SetRuleEnabled(ctx, a.actor(), id, enable)
				return fmt.Sprintf("%s regex %d.%s", done, id, cancelledNote(n)), err
			})
		},
	}
}

// cancelledNote says how many queued deletions a rule change cancelled.
func cancelledNote(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return " Cancelled 1 queued deletion that no other enforcing rule justifies."
	}
	return fmt.Sprintf(" Cancelled %d queued deletions that no other enforcing rule justifies.", n)
}

func newRegexTestCmd(a *app) *cobra.Command {
	var validator string
	var asJSON bool
	var id int64
	var bt backtestOptions
	cmd := &cobra.Command{
		Use:   "test PATTERN [TEXT...|-]",
		Short: "Show what a pattern would match, in text or in recent history, storing nothing",
		Long: `Show what PATTERN would match in each TEXT (or each line of stdin, with - or no TEXT), masked,
with the engine, normalisation and limits the daemon uses, and how many of the messages it would
flag. Nothing is stored and nothing is deleted: try a rule before 'regex add' makes it bite.

With --history 30d it reads the last 30 days of Slack's history instead (SLACK_USER_TOKEN,
the read scopes) and reports the matches per conversation, the share of messages it would
flag and a few masked examples. --id N tests a stored rule (with its allowlists) instead
of PATTERN. Exit status 0 (even when it matches), 2 when the pattern is refused.`,
		Example: `  securechat regex test 'acme_[a-z0-9]{32}' "token acme_0123456789abcdef0123456789abcdef"
  securechat regex test '\b[0-9]{13,19}\b' --validator luhn - < sample-messages.txt
  securechat regex test -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' "-----BEGIN RSA PRIVATE KEY-----"
  securechat regex test 'acme_[a-z0-9]{32}' --history 30d
  securechat regex test --id 7 --history 7d --channel '#devops'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if id != 0 {
				return nil
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			rule := store.Regex{ID: 1, Description: "test", Enabled: true, Validator: validator, Action: store.ActionMonitor}
			if id != 0 {
				s, err := a.openStore(cmd.Context(), openRead)
				if err != nil {
					return err
				}
				stored, err := s.Regex(cmd.Context(), id)
				s.Close()
				if err != nil {
					return fmt.Errorf("regex %d: %w", id, err)
				}
				stored.Enabled = true // tested even when disabled
				rule = stored
			} else {
				rule.Pattern, args = args[0], args[1:]
				if err := detect.Validate(rule.Pattern); err != nil {
					return err
				}
			}
			if err := ruleset.Validate(rule); err != nil {
				return err
			}
			snap := ruleset.New([]store.Regex{rule}, nil, nil)
			if bt.history != "" {
				if len(args) > 0 {
					return &usageError{cmd: cmd.CommandPath(), err: errors.New("--history reads Slack's history: give no TEXT")}
				}
				bt.json = asJSON
				return runBacktest(cmd.Context(), a, snap, bt, nil)
			}
			texts := args
			if len(texts) == 0 || (len(texts) == 1 && texts[0] == "-") {
				texts = nil
				sc := bufio.NewScanner(a.Stdin)
				sc.Buffer(make([]byte, 0, 64*1024), maxCheckLine)
				for sc.Scan() {
					texts = append(texts, strings.TrimSuffix(sc.Text(), "\r"))
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
			}
			type hit struct {
				Line    int    `json:"line"`
				Excerpt string `json:"excerpt"`
				Start   int    `json:"start"`
				End     int    `json:"end"`
			}
			var hits []hit
			flagged := 0
			for i, text := range texts {
				fs := snap.Decide(text, true).Findings
				if len(fs) > 0 {
					flagged++
				}
				for _, f := range fs {
					hits = append(hits, hit{Line: i + 1, Excerpt: f.Excerpt, Start: f.Start, End: f.End})
				}
			}
			if asJSON {
				if hits == nil {
					hits = []hit{}
				}
				return writeJSON(a.Stdout, map[string]any{"messages": len(texts), "flagged": flagged, "matches": hits})
			}
			for _, h := range hits {
				fmt.Fprintf(a.Stdout, "line %d: %s (bytes %d-%d)\n", h.Line, h.Excerpt, h.Start, h.End)
			}
			share := 0.0
			if len(texts) > 0 {
				share = 100 * float64(flagged) / float64(len(texts))
			}
			fmt.Fprintf(a.Stderr, "%d of %d message(s) would be flagged (%.1f%%); nothing was stored.\n", flagged, len(texts), share)
			return nil
		},
	}
	cmd.Flags().StringVar(&validator, "validator", "", "drop matches that fail a check: "+strings.Join(detect.ValidatorNames(), ", "))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: messages, flagged, matches")
	cmd.Flags().Int64Var(&id, "id", 0, "test the stored rule with this id (its allowlists too) instead of PATTERN")
	cmd.Flags().StringVar(&bt.history, "history", "", "read Slack's history this far back (30d, 2w, a date) instead of TEXT")
	bt.flags(cmd.Flags())
	return cmd
}
