package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/history"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

type scanOptions struct {
	since, until string
	channels     []string
	types        []string
	again, json  bool
	enforce, yes bool
}

func newScanCmd(a *app) *cobra.Command {
	var o scanOptions
	cmd := &cobra.Command{
		Use: "scan",
		// It finishes what is in flight when interrupted: Run waits for it.
		Annotations: map[string]string{annotInterrupt: interruptFinishes},
		Short:       "Sweep Slack's history with the enabled rules: record what it finds, delete nothing",
		Long: `Sweep the history of the conversations the user token's user is a member of with the
enabled rules, and record what matches as found in history. It deletes nothing and
notifies no author: review the findings with 'securechat leaks list --origin history',
then 'securechat scan --enforce' queues their deletion (a running daemon carries it
out, at Slack's pace and within every limit of the normal deletion path).

A sweep is resumable: interrupted (Ctrl-C, a network failure), the same command goes
on from where each conversation stopped. A finished sweep is not repeated unless
--again. One summary alert and webhook event is queued per sweep.

It needs SLACK_USER_TOKEN (not the app token), with the read scopes of each type
(channels:read, groups:read, im:read, mpim:read) and the history ones.`,
		Example: `  securechat scan --since 7d
  securechat scan --since 2026-11-01 --until 2026-11-15 --channel '#devops' --channel C024BE7LR
  securechat scan --since 30d --types channel,group --json
  securechat scan --enforce          # shows what it would queue
  securechat scan --enforce --yes    # queues it`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if o.enforce {
				return runEnforce(ctx, a, o) // reads nothing from Slack: no token needed
			}
			if err := a.cfg.validateUserToken(); err != nil {
				return err
			}
			return runScan(ctx, a, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.since, "since", "7d", "start of the window: a duration back from now (30m, 24h, 7d, 2w) or a date/RFC 3339 time")
	fl.StringVar(&o.until, "until", "", "end of the window (default now): a duration back from now or a date/RFC 3339 time")
	fl.StringSliceVar(&o.channels, "channel", nil, "only this conversation: an id or a #name the daemon has seen (repeatable)")
	fl.StringSliceVar(&o.types, "types", nil, "only these conversation types: channel, group, im, mpim (default: all the token can list)")
	fl.BoolVar(&o.again, "again", false, "run a finished sweep of the same window again")
	fl.BoolVar(&o.json, "json", false, "print the summary as JSON")
	fl.BoolVar(&o.enforce, "enforce", false, "queue the deletion of messages found in history (reads nothing from Slack)")
	fl.BoolVar(&o.yes, "yes", false, "with --enforce: queue them (without it, only say what would be queued)")
	return cmd
}

// sweepKey names a sweep by what was asked; a window given as durations is
// named per day, so that rerunning it the next day is a new sweep.
func sweepKey(o scanOptions, channels []string, now time.Time) string {
	key := fmt.Sprintf("since=%s until=%s channels=%s types=%s", o.since, o.until,
		strings.Join(slices.Sorted(slices.Values(channels)), ","), strings.Join(slices.Sorted(slices.Values(o.types)), ","))
	if _, err := time.Parse("2006-01-02", o.since); err != nil {
		if _, err := time.Parse(time.RFC3339, o.since); err != nil {
			key += " day=" + now.UTC().Format("2006-01-02")
		}
	}
	return key
}

func runScan(ctx context.Context, a *app, o scanOptions) error {
	now := a.Now()
	since, err := parseSince(o.since, now)
	if err != nil {
		return err
	}
	until := now
	if o.until != "" {
		if until, err = parseSince(o.until, now); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
	}
	if !since.Before(until) {
		return fmt.Errorf("--since %s is not before --until %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	for _, t := range o.types {
		switch t {
		case "channel", "group", "im", "mpim":
		default:
			return fmt.Errorf("--types: %q is not one of channel (public), group (private), im (DM), mpim (group DM)", t)
		}
	}
	s, err := a.openStore(ctx, openWrite)
	if err != nil {
		return err
	}
	defer s.Close()
	var ids []string
	for _, ch := range o.channels {
		id, err := channelID(ctx, s, ch)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	c := a.cfg
	log := a.newLogger()
	prog := newProgressLine(a.Stderr, now, a.Now)
	hist := history.Options{UserToken: c.Slack.UserToken, APIURL: c.APIURL(), Since: since, Until: until, Channels: ids,
		Types: o.types, ScanBots: c.Daemon.ScanBots, Log: log, Now: a.Now,
		Pace:  history.Pace{PerMinute: c.Catchup.RequestsPerMinute, PageSize: c.Catchup.PageSize},
		Scope: bot.Scope{Channels: c.Scope.Channels, ExcludeChannels: c.Scope.ExcludeChannels, Types: c.Scope.Types, ExemptUsers: c.Scope.ExemptUsers},
		Progress: func(p history.Progress) {
			if !o.json {
				prog.show(p)
			}
		},
	}
	notify := bot.Notify{AlertChannel: c.Notify.AlertChannel, WebhookURL: c.Notify.WebhookURL}
	res, err := history.Sweep(ctx, s, hist, sweepKey(o, ids, now), o.again, notify, allowKey(c.Allowlist.Secret))
	prog.done()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; run the same command again to continue the sweep: %w", ctx.Err())
		}
		return err
	}
	if o.json {
		enc := json.NewEncoder(a.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if res.AlreadyDone {
		fmt.Fprintf(a.Stdout, "This sweep (%s to %s) finished at %s: %d messages, %d with findings. Use --again to run it again.\n",
			res.Since.Format(time.RFC3339), res.Until.Format(time.RFC3339), res.Finished.Format(time.RFC3339), res.Messages, res.Findings)
		return nil
	}
	how := "Swept"
	if res.Resumed {
		how = "Swept (continued)"
	}
	fmt.Fprintf(a.Stdout, "%s %s to %s: %d messages in %d conversations, %d with findings (%d new leak records).\n",
		how, res.Since.Format(time.RFC3339), res.Until.Format(time.RFC3339), res.Messages, res.Conversations, res.Findings, res.NewLeaks)
	if res.Findings == 0 {
		return nil
	}
	names, _ := s.Names(ctx, store.NameConversation)
	t := newTable(a.Stdout, "CONVERSATION", "MESSAGES WITH FINDINGS")
	for _, ch := range slices.Sorted(maps.Keys(res.ByChannel)) {
		name := ch
		if n := names[ch]; n != "" {
			name = "#" + n
		}
		t.row(name, fmt.Sprint(res.ByChannel[ch]))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.Stdout, "Nothing was deleted. Review: securechat leaks list --origin history; delete: securechat scan --enforce")
	return nil
}

func runEnforce(ctx context.Context, a *app, o scanOptions) error {
	mode := openRead
	if o.yes {
		mode = openWrite
	}
	s, err := a.openStore(ctx, mode)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.EnforceHistory(ctx, !o.yes)
	if err != nil {
		return err
	}
	if !o.yes {
		fmt.Fprintf(a.Stdout, "Would queue the deletion of %d message(s) found in history (by rules still enabled with action delete; not allowlisted values, not DMs). Rerun with --yes to queue them.\n", n)
		return nil
	}
	fmt.Fprintf(a.Stdout, "Queued the deletion of %d message(s) found in history. A running 'securechat run' deletes them at Slack's pace; follow with 'securechat leaks list --origin history'.\n", n)
	return nil
}

// progressLine shows a sweep's progress: one line rewritten in place on a
// terminal, a line every 10 s otherwise.
type progressLine struct {
	w        io.Writer
	tty      bool
	start    time.Time
	now      func() time.Time
	mu       sync.Mutex
	last     time.Time
	shown    bool
	lastLine string
}

func newProgressLine(w io.Writer, start time.Time, now func() time.Time) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressLine{w: w, tty: tty, start: start, now: now}
}

func (p *progressLine) show(h history.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.tty && now.Sub(p.last) < 10*time.Second && !h.Waiting {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(h.Messages) / el.Seconds()
	}
	eta := "?"
	if h.Done > 0 && h.Done < h.Conversations {
		eta = (time.Duration(float64(el) / float64(h.Done) * float64(h.Conversations-h.Done))).Round(time.Second).String()
	}
	line := fmt.Sprintf("scan: %d/%d conversations, %d messages, %d with findings, %.0f msg/s, ETA %s", h.Done, h.Conversations, h.Messages, h.Findings, rate, eta)
	if h.Waiting {
		line += " (waiting for Slack's rate limit)"
	}
	if line == p.lastLine {
		return
	}
	p.lastLine = line
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progressLine) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// backtestOptions say which history a back-test reads.
type backtestOptions struct {
	history  string // how far back: 30d, or a date
	channels []string
	types    []string
	json     bool
}

func (o *backtestOptions) flags(fl interface {
	StringSliceVar(p *[]string, name string, value []string, usage string)
}) {
	fl.StringSliceVar(&o.channels, "channel", nil, "with --history/--backtest: only this conversation (an id or a #name the daemon has seen; repeatable)")
	fl.StringSliceVar(&o.types, "types", nil, "with --history/--backtest: only these conversation types (channel, group, im, mpim)")
}

// runBacktest reads recent history with snap and reports what it would
// flag; names labels the rules in the per-rule table (nil: no table).
func runBacktest(ctx context.Context, a *app, snap *ruleset.Snapshot, o backtestOptions, names map[int64]string) error {
	if err := a.cfg.validateUserToken(); err != nil {
		return &hintError{err: fmt.Errorf("a back-test reads Slack's history: %w", err), hint: "set " + EnvUserToken + " (the daemon's user token); nothing is stored or deleted"}
	}
	now := a.Now()
	since, err := parseSince(o.history, now)
	if err != nil {
		return fmt.Errorf("--history/--backtest: %w", err)
	}
	var ids []string
	if len(o.channels) > 0 {
		s, err := a.openStore(ctx, openRead)
		if err != nil {
			return err
		}
		for _, ch := range o.channels {
			id, err := channelID(ctx, s, ch)
			if err != nil {
				s.Close()
				return err
			}
			ids = append(ids, id)
		}
		s.Close()
	}
	c := a.cfg
	prog := newProgressLine(a.Stderr, now, a.Now)
	res, err := history.Backtest(ctx, history.Options{UserToken: c.Slack.UserToken, APIURL: c.APIURL(), Since: since, Until: now,
		Channels: ids, Types: o.types, ScanBots: c.Daemon.ScanBots, Log: a.newLogger(), Now: a.Now,
		Pace:  history.Pace{PerMinute: c.Catchup.RequestsPerMinute, PageSize: c.Catchup.PageSize},
		Scope: bot.Scope{Channels: c.Scope.Channels, ExcludeChannels: c.Scope.ExcludeChannels, Types: c.Scope.Types, ExemptUsers: c.Scope.ExemptUsers},
		Progress: func(p history.Progress) {
			if !o.json {
				prog.show(p)
			}
		}}, snap)
	prog.done()
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(a.Stdout, res)
	}
	pct := func(n, of int) string {
		if of == 0 {
			return "0.0%"
		}
		return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
	}
	fmt.Fprintf(a.Stdout, "Back-test over %s to %s: %d messages in %d conversations, %d would be flagged (%s).\n",
		res.Since.Format(time.RFC3339), res.Until.Format(time.RFC3339), res.Messages, res.Conversations, res.Flagged, pct(res.Flagged, res.Messages))
	t := newTable(a.Stdout, "CONVERSATION", "MESSAGES", "FLAGGED", "SHARE")
	for _, id := range slices.Sorted(maps.Keys(res.ByChannel)) {
		bc := res.ByChannel[id]
		name := id
		if bc.Name != "" {
			name = "#" + bc.Name
		}
		t.row(name, fmt.Sprint(bc.Messages), fmt.Sprint(bc.Flagged), pct(bc.Flagged, bc.Messages))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if names != nil {
		fmt.Fprintln(a.Stdout)
		t := newTable(a.Stdout, "RULE", "FLAGGED", "SHARE")
		for _, id := range slices.Sorted(maps.Keys(names)) {
			t.row(names[id], fmt.Sprint(res.ByRule[id]), pct(res.ByRule[id], res.Messages))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(res.Examples) > 0 {
		fmt.Fprintln(a.Stdout, "\nExamples (masked):")
		for _, ex := range res.Examples {
			label := fmt.Sprint(ex.RegexID)
			if names != nil {
				label = names[ex.RegexID]
			}
			fmt.Fprintf(a.Stdout, "  %s %s %s: %s\n", ex.Channel, ex.TS, label, ex.Excerpt)
		}
	}
	fmt.Fprintln(a.Stderr, "Nothing was stored or deleted.")
	return nil
}
