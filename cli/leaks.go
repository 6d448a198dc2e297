package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/store"
)

func newLeaksCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "leaks",
		Aliases: []string{"leak"},
		Short:   "Read the log of leaks securechat found",
	}
	groupCmd(cmd)
	cmd.AddCommand(newLeaksListCmd(a), newLeaksAllowCmd(a), newLeaksAllowlistCmd(a), newLeaksUnallowCmd(a), newLeaksStatsCmd(a),
		newLeaksCancelCmd(a), newLeaksResumeCmd(a))
	return cmd
}

func newLeaksAllowCmd(a *app) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "allow LEAK-ID...",
		Short: "Allowlist the value a leak matched (a test card, a sample key)",
		Long: `Allowlist the exact value a leak matched, so that this value never fires again while
other values of the same rule still do. Only a keyed fingerprint of the value (HMAC-SHA256
with [allowlist] secret, or SECURECHAT_ALLOWLIST_SECRET) is stored, never the value; the
daemon must have had the secret when it recorded the leak. A running daemon applies the
allowlist within a couple of seconds.`,
		Example: `  securechat leaks allow 42 --note "Stripe test card used in docs"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachID(cmd, args, func(ctx context.Context, s *store.Store, id int64) (string, error) {
				v, c, err := a.service(s).AllowLeak(ctx, a.actor(), id, note)
				if errors.Is(err, store.ErrNoFingerprint) {
					err = fmt.Errorf("%w: it was recorded while no allowlist secret was set. Set %s (or [allowlist] secret) for the daemon; leaks recorded from then on can be allowed", err, EnvAllowKey)
				}
				if err == nil && !c.Done {
					return fmt.Sprintf("The value of leak %d (%s) was allowlisted already, as entry %d.", id, v.Excerpt, v.ID), nil
				}
				return fmt.Sprintf("Allowed the value of leak %d (%s) as allowlist entry %d.", id, v.Excerpt, v.ID), err
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why this value is not a leak")
	return cmd
}

func newLeaksAllowlistCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "allowlist",
		Short: "List the allowlisted values",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context(), openRead)
			if err != nil {
				return err
			}
			defer s.Close()
			vs, err := s.AllowedValues(cmd.Context())
			if err != nil {
				return err
			}
			return printList(a, asJSON, vs, "No allowlisted values. Allow one with: securechat leaks allow LEAK-ID", func(vs []store.AllowedValue) error {
				t := newTable(a.Stdout, "ID", "EXCERPT", "REGEX", "FROM LEAK", "NOTE", "ADDED")
				for _, v := range vs {
					t.row(strconv.FormatInt(v.ID, 10), v.Excerpt, strconv.FormatInt(v.RegexID, 10), strconv.FormatInt(v.LeakID, 10), v.Note, formatTime(v.CreatedAt))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newLeaksUnallowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "unallow ENTRY-ID...",
		Short: "Take values off the allowlist (ids from 'leaks allowlist')",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachID(cmd, args, func(ctx context.Context, s *store.Store, id int64) (string, error) {
				return fmt.Sprintf("Removed allowlist entry %d.", id), a.service(s).Unallow(ctx, a.actor(), id)
			})
		},
	}
}

func newLeaksStatsCmd(a *app) *cobra.Command {
	var asJSON bool
	var top int
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Leaks per rule, per action and per channel: find the noisy rules",
		Long: `Count leaks per rule, per action and per channel over the last 24 hours, the last 7
days and all time, busiest first. A rule with many hits in monitor mode is a candidate for
tightening (a validator, an allowlisted value) before it is switched to delete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context(), openRead)
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.Stats(cmd.Context(), a.Now(), top)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.Stdout, st)
			}
			section := func(title, key string, rows []store.StatRow, label bool) error {
				fmt.Fprintln(a.Stdout, title)
				head := []string{key, "24H", "7D", "TOTAL"}
				if label {
					head = []string{key, "DESCRIPTION", "24H", "7D", "TOTAL"}
				}
				t := newTable(a.Stdout, head...)
				for _, r := range rows {
					cells := []string{r.Key, strconv.Itoa(r.Last24h), strconv.Itoa(r.Last7d), strconv.Itoa(r.Total)}
					if label {
						cells = append([]string{r.Key, truncate(r.Label, 40)}, cells[1:]...)
					}
					t.row(cells...)
				}
				if err := t.flush(); err != nil {
					return err
				}
				_, err := fmt.Fprintln(a.Stdout)
				return err
			}
			return errors.Join(
				section("By rule:", "REGEX", st.ByRule, true),
				section("By action:", "ACTION", st.ByAction, false),
				section("By channel:", "CHANNEL", st.ByChannel, false))
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&top, "top", 10, "channels to show (0: all)")
	return cmd
}

type leaksListOptions struct {
	json    bool
	limit   int
	channel string
	since   string
	status  string
	action  string
	origin  string
	regexID int64
	report  string
}

func newLeaksListCmd(a *app) *cobra.Command {
	var o leaksListOptions
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List recorded leaks, newest first",
		Long: `List recorded leaks, newest first. Each leak shows a masked excerpt of what matched
(never the secret itself) and the state of the message's deletion:
  pending   queued, or being retried (see ATTEMPTS and the JSON last_error)
  deleted   the message is gone from Slack
  failed    Slack refused for good (the reason is in last_error)
REPORT is what the author said from the notice's buttons: "not a secret" (open until an
admin allows the value or keeps it deleted) or "rotated".`,
		Example: `  securechat leaks list
  securechat leaks list --since 7d --channel C024BE7LR
  securechat leaks list --channel '#devops'
  securechat leaks list --status failed --json | jq -r '.[].last_error'
  securechat leaks list --reported open      # "Not a secret" reports waiting for an admin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := store.LeakFilter{Channel: o.channel, Limit: o.limit, RegexID: o.regexID}
			switch o.origin {
			case "", store.OriginLive, store.OriginHistory:
				f.Origin = o.origin
			default:
				return fmt.Errorf("--origin %q: use live or history", o.origin)
			}
			switch o.report {
			case "", "any", store.ReportOpen, store.ReportKept, store.ReportAllowed, store.ReportNoted:
				f.Reported = o.report
			default:
				return fmt.Errorf("--reported %q: use open, kept, allowed, noted or any", o.report)
			}
			switch o.action {
			case "", store.ActionDelete, store.ActionMonitor:
				f.Action = o.action
			default:
				return fmt.Errorf("--action %q: use delete or monitor", o.action)
			}
			if o.limit < 0 {
				return fmt.Errorf("--limit %d: use 0 for no limit, or a positive number", o.limit)
			}
			switch {
			case o.status == "" || slices.Contains(store.LeakStatuses, o.status):
				f.Status = o.status
			default:
				return fmt.Errorf("--status %q: use one of %s", o.status, strings.Join(store.LeakStatuses, ", "))
			}
			if o.since != "" {
				since, err := parseSince(o.since, a.Now())
				if err != nil {
					return err
				}
				f.Since = since
			}
			s, err := a.openStore(cmd.Context(), openRead)
			if err != nil {
				return err
			}
			defer s.Close()
			if f.Channel, err = channelID(cmd.Context(), s, o.channel); err != nil {
				return err
			}
			leaks, err := s.Leaks(cmd.Context(), f)
			if err != nil {
				return err
			}
			if err := nameLeaks(cmd.Context(), s, leaks); err != nil {
				return err
			}
			return printList(a, o.json, leaks, "No leaks recorded that match.", func(leaks []store.Leak) error {
				if err := printLeaks(a.Stdout, leaks); err != nil {
					return err
				}
				if o.limit > 0 && len(leaks) == o.limit {
					fmt.Fprintf(a.Stderr, "Showing the newest %d; use --limit 0 for all.\n", o.limit)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.json, "json", false, "print JSON (an array of objects)")
	fl.IntVarP(&o.limit, "limit", "L", 50, "show at most this many (0: all)")
	fl.StringVar(&o.channel, "channel", "", "only leaks in this channel: an id (C024BE7LR) or a #name the daemon has seen")
	fl.StringVar(&o.since, "since", "", "only leaks detected in the last DURATION (30m, 24h, 7d, 2w) or since a date (2026-11-01)")
	fl.StringVar(&o.status, "status", "", "only leaks with this status: pending, held, cancelled, deleted, failed, monitored, undeletable or found")
	fl.StringVar(&o.action, "action", "", "only leaks that were to be deleted (delete) or only recorded (monitor)")
	fl.Int64Var(&o.regexID, "regex", 0, "only leaks found by this regex id")
	fl.StringVar(&o.report, "reported", "", "only leaks their author reported, in this state: open, kept, allowed, noted (rotated) or any")
	fl.StringVar(&o.origin, "origin", "", "only leaks found live (live: events and the catch-up) or by a history sweep (history)")
	return cmd
}

// parseSince reads "30m", "24h", "7d", "2w", or a date or RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	var d time.Duration
	if unit != 0 {
		n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSuffix(s, "d"), "w"), 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("--since %q: write a duration like 30m, 24h, 7d or 2w, or a date like 2026-11-01", s)
		}
		d = time.Duration(n * float64(unit))
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: write a duration like 30m, 24h, 7d or 2w, or a date like 2026-11-01", s)
		}
	}
	return now.Add(-d), nil
}

// printLeaks writes the leak table that 'leaks list' (and the demo) shows.
func printLeaks(w io.Writer, leaks []store.Leak) error {
	t := newTable(w, "ID", "DETECTED", "CHANNEL", "USER", "TS", "REGEX", "EXCERPT", "ACTION", "STATUS", "ATTEMPTS", "REPORT")
	for _, l := range leaks {
		rule := fmt.Sprint(l.RegexID)
		if l.Rule != "" {
			rule += " " + truncate(l.Rule, 30)
		}
		channel, user := l.Channel, l.User
		if l.ChannelName != "" {
			channel = "#" + l.ChannelName
		}
		if l.UserName != "" {
			user = "@" + l.UserName
		}
		t.row(fmt.Sprint(l.ID), formatTime(l.DetectedAt), channel, user, l.TS, rule, l.Excerpt, l.Action, l.Status, fmt.Sprint(l.Attempts), reportWords(l.Report))
	}
	return t.flush()
}

// selection reads which queued deletions a command acts on: LEAK-IDs, --rule
// ID or the all flag (named allFlag), exactly one of them.
func selection(cmd *cobra.Command, args []string, rule int64, all bool, allFlag string) (store.Selection, error) {
	var sel store.Selection
	given := 0
	if len(args) > 0 {
		ids, err := parseIDs(args)
		if err != nil {
			return sel, err
		}
		sel.LeakIDs, given = ids, given+1
	}
	if rule != 0 {
		sel.RegexID, given = rule, given+1
	}
	if all {
		sel.All, given = true, given+1
	}
	if given != 1 {
		return sel, &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("give LEAK-IDs, --rule ID or %s (one of them)", allFlag)}
	}
	return sel, nil
}

func newLeaksCancelCmd(a *app) *cobra.Command {
	var rule int64
	var allPending bool
	cmd := &cobra.Command{
		Use:   "cancel [LEAK-ID...]",
		Short: "Cancel queued deletions: the messages stay in Slack",
		Long: `Cancel the queued (pending or held) deletion of the message each leak belongs to, of every
message a rule found (--rule), or of every queued message (--all-pending). A running daemon
never deletes a cancelled message; the leaks stay in the log, with when and by whom the
deletion was cancelled. A deletion already done or failed is left as it is.`,
		Example: `  securechat leaks cancel 42 43
  securechat leaks cancel --rule 7          # a rule that matched what it should not
  securechat leaks cancel --all-pending     # stop everything queued`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := selection(cmd, args, rule, allPending, "--all-pending")
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context(), openWrite)
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := a.service(s).CancelDeletions(cmd.Context(), a.actor(), sel, "cancelled with 'securechat leaks cancel'")
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "%d\n", n)
			fmt.Fprintf(a.Stderr, "Cancelled %d queued deletion(s).\n", n)
			return nil
		},
	}
	cmd.Flags().Int64Var(&rule, "rule", 0, "cancel every queued deletion with a finding of this regex id")
	cmd.Flags().BoolVar(&allPending, "all-pending", false, "cancel every queued deletion")
	return cmd
}

func newLeaksResumeCmd(a *app) *cobra.Command {
	var rule int64
	var all bool
	cmd := &cobra.Command{
		Use:   "resume [LEAK-ID...]",
		Short: "Resume held deletions (monitor mode's, the breaker's)",
		Long: `Resume held deletions. In monitor mode queued deletions are held, and when the daemon
enforces again only those younger than [daemon] resume_max_age (24h) resume by themselves;
older ones wait for this command, since the message may have been edited clean since: look
at them with 'securechat leaks list --status held' first. The runaway-rule breaker holds the
deletions of the rule it stops: resume them with --rule ID once the rule enforces again
(--rule leaves monitor mode's held deletions alone; name them by leak id, or use --all). A
deletion that no enforcing rule justifies any more is not resumed. A running daemon picks
resumed deletions up within seconds.`,
		Example: `  securechat leaks list --status held
  securechat leaks resume 42
  securechat leaks resume --rule 7          # after 'securechat regex update 7 --action delete'
  securechat leaks resume --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := selection(cmd, args, rule, all, "--all")
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context(), openWrite)
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := a.service(s).ResumeDeletions(cmd.Context(), a.actor(), sel)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "%d\n", n)
			fmt.Fprintf(a.Stderr, "Resumed %d held deletion(s).\n", n)
			return nil
		},
	}
	cmd.Flags().Int64Var(&rule, "rule", 0, "resume the deletions the breaker held with a finding of this regex id (monitor mode's stay held)")
	cmd.Flags().BoolVar(&all, "all", false, "resume every held deletion")
	return cmd
}

// channelID reads a --channel value: a conversation id as it is, or a #name
// from the daemon's name cache (the CLI never calls Slack).
func channelID(ctx context.Context, s *store.Store, v string) (string, error) {
	name, ok := strings.CutPrefix(v, "#")
	if !ok {
		return v, nil
	}
	id, err := s.IDByName(ctx, store.NameConversation, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", &hintError{fmt.Errorf("--channel %s: no conversation of that name in the name cache", v),
			"the daemon learns names as it reads Slack (catch-up, leaks); use the channel id (C…) meanwhile"}
	}
	return id, err
}

// nameLeaks fills in the cached names of the leaks' conversations and users.
func nameLeaks(ctx context.Context, s *store.Store, leaks []store.Leak) error {
	if len(leaks) == 0 {
		return nil
	}
	convs, err := s.Names(ctx, store.NameConversation)
	if err != nil {
		return err
	}
	users, err := s.Names(ctx, store.NameUser)
	if err != nil {
		return err
	}
	for i := range leaks {
		leaks[i].ChannelName, leaks[i].UserName = convs[leaks[i].Channel], users[leaks[i].User]
	}
	return nil
}

// reportWords is a leak's report as 'leaks list' shows it: "not a secret
// (open)", "rotated", or "-".
func reportWords(r string) string {
	kind, status, _ := strings.Cut(r, " ")
	switch {
	case r == "":
		return "-"
	case kind == store.ReportRotated:
		return "rotated"
	case kind == store.ReportNotSecret:
		return "not a secret (" + status + ")"
	}
	return r
}
