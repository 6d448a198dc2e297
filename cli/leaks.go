package cli

import (
	"fmt"
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
	cmd.AddCommand(newLeaksListCmd(a))
	return cmd
}

type leaksListOptions struct {
	json    bool
	limit   int
	channel string
	since   string
	status  string
	regexID int64
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
  failed    Slack refused for good (the reason is in last_error)`,
		Example: `  securechat leaks list
  securechat leaks list --since 7d --channel C024BE7LR
  securechat leaks list --status failed --json | jq -r '.[].last_error'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := store.LeakFilter{Channel: o.channel, Limit: o.limit, RegexID: o.regexID}
			if o.limit < 0 {
				return fmt.Errorf("--limit %d: use 0 for no limit, or a positive number", o.limit)
			}
			switch o.status {
			case "", store.StatusPending, store.StatusDeleted, store.StatusFailed:
				f.Status = o.status
			default:
				return fmt.Errorf("--status %q: use pending, deleted or failed", o.status)
			}
			if o.since != "" {
				since, err := parseSince(o.since, a.Now())
				if err != nil {
					return err
				}
				f.Since = since
			}
			s, err := a.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			leaks, err := s.Leaks(cmd.Context(), f)
			if err != nil {
				return err
			}
			if o.json {
				if leaks == nil {
					leaks = []store.Leak{}
				}
				return writeJSON(a.Stdout, leaks)
			}
			if len(leaks) == 0 {
				fmt.Fprintln(a.Stderr, "No leaks recorded that match.")
				return nil
			}
			if err := printLeaks(a.Stdout, leaks); err != nil {
				return err
			}
			if o.limit > 0 && len(leaks) == o.limit {
				fmt.Fprintf(a.Stderr, "Showing the newest %d; use --limit 0 for all.\n", o.limit)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.json, "json", false, "print JSON (an array of objects)")
	fl.IntVarP(&o.limit, "limit", "L", 50, "show at most this many (0: all)")
	fl.StringVar(&o.channel, "channel", "", "only leaks in this channel id (e.g. C024BE7LR)")
	fl.StringVar(&o.since, "since", "", "only leaks detected in the last DURATION (30m, 24h, 7d, 2w) or since a date (2026-11-01)")
	fl.StringVar(&o.status, "status", "", "only leaks whose deletion is pending, deleted or failed")
	fl.Int64Var(&o.regexID, "regex", 0, "only leaks found by this regex id")
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
