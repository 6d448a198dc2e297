package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/fakeslack"
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// demoRules are the README's example rule, one more, and a builtin rolled
// out in monitor mode.
var demoRules = []store.Regex{
	{Pattern: `.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*`, Description: "Maestro cards", Enabled: true},
	{Pattern: `(?:AKIA|ASIA)[A-Z2-7]{16}`, Description: "AWS access key id", Enabled: true},
}

// demoAlerts is the fake admins' alert channel.
const demoAlerts = "C0SECURITY1"

type demoPost struct {
	channel, name, user, text string
	editTo                    string // posted clean, then edited to this
}

var demoPosts = []demoPost{
	{channel: "C0GENERAL01", name: "#general", user: "U0ALICE", text: "lunch at 12? :pizza:"},
	{channel: "C0GENERAL01", name: "#general", user: "U0BOB", text: "sure, I'll pay, card is 6759649826438453"},
	{channel: "C0DEVOPS001", name: "#devops", user: "U0CAROL", text: "prod creds: AKIAIOSFODNN7EXAMPL2 <- rotate after"},
	{channel: "D0DIRECT001", name: "DM", user: "U0DAN", text: "my other card 676100041090 & the PIN later"},
	{channel: "C0DEVOPS001", name: "#devops", user: "U0ERIN", text: "staging db password = Winter2026!x"},
	{channel: "C0GENERAL01", name: "#general", user: "U0ALICE", text: "the deploy is done :tada:", editTo: "the deploy is done, key AKIAIOSFODNN7EXAMPL3"},
}

func newDemoCmd(a *app) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See securechat work end to end, with a fake Slack on this machine",
		Long: `Run the whole pipeline on this machine with no Slack workspace: a fake Slack (Web API and
Socket Mode on 127.0.0.1), a temporary database with the README's example rules, the real
daemon, and a few messages posted through it. It shows what was deleted and the leak table.

With --db the demo writes to that database instead of a temporary one, so you can look
at it afterwards with 'securechat leaks list --db PATH'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dbPath := a.cfg.DB
			if !cmd.Flags().Changed("db") && a.Getenv(EnvDB) == "" {
				dir, err := os.MkdirTemp("", "securechat-demo-")
				if err != nil {
					return fmt.Errorf("create a temporary directory: %w", err)
				}
				defer os.RemoveAll(dir)
				dbPath = filepath.Join(dir, "securechat.db")
			}
			return runDemo(cmd.Context(), a, dbPath, verbose)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the daemon's own log lines")
	return cmd
}

func runDemo(ctx context.Context, a *app, dbPath string, verbose bool) error {
	out := a.Stdout
	fake := fakeslack.New(fakeslack.Options{PingInterval: time.Second})
	defer fake.Close()
	st, err := store.Open(ctx, dbPath, store.WithClock(a.Now))
	if err != nil {
		return err
	}
	defer st.Close()

	fmt.Fprintln(out, "securechat demo: the whole pipeline on this machine, no Slack workspace needed.")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "  fake Slack   %s (Web API) and Socket Mode, on 127.0.0.1\n", fake.APIURL())
	fmt.Fprintf(out, "  database     %s\n", dbPath)
	pw, _ := detect.LookupBuiltin("password-assignment")
	rulesToAdd := append(slices.Clone(demoRules), store.Regex{Pattern: pw.Pattern, Description: pw.Description, Enabled: true,
		Action: store.ActionMonitor, Source: "builtin:" + pw.Name, SecretGroup: pw.SecretGroup, AllowPatterns: pw.Allow, Stopwords: pw.Stopwords})
	var stored []store.Regex
	for _, r := range rulesToAdd {
		reg, err := st.AddRule(ctx, r)
		var dup *store.DuplicateError
		if errors.As(err, &dup) {
			reg, err = st.Regex(ctx, dup.ID)
		}
		if err != nil {
			return err
		}
		stored = append(stored, reg)
		fmt.Fprintf(out, "  regex %-6d %s  (%s, %s)\n", reg.ID, truncate(reg.Pattern, 60), reg.Description, reg.Action)
	}
	display, _ := bot.CompileRules(stored)
	actions := map[int64]string{}
	for _, r := range stored {
		actions[r.ID] = r.Action
	}

	logLevel := zerolog.WarnLevel
	if verbose {
		logLevel = zerolog.InfoLevel
	}
	log := a.newLogger().Level(logLevel)
	d := bot.New(st, log, bot.Options{
		AppToken: fake.AppToken(), UserToken: fake.UserToken(), APIURL: fake.APIURL(),
		ReloadInterval: 200 * time.Millisecond, RetryMax: time.Second, Now: a.Now,
		Notify: bot.Notify{Author: "ephemeral", AuthorMessage: a.cfg.Notify.AuthorMessage, AlertChannel: demoAlerts},
	})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	waitCtx, cancelWait := context.WithTimeout(ctx, 20*time.Second)
	defer cancelWait()
	if err := fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Connections() > 0 }); err != nil {
		stop()
		if derr := <-done; derr != nil {
			return derr
		}
		return fmt.Errorf("the daemon did not connect to the fake Slack: %w", err)
	}
	fmt.Fprintln(out, "  daemon       connected over Socket Mode")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Members post (secrets shown masked here too):")

	deleted := 0
	for _, p := range demoPosts {
		posted := time.Now()
		ts, env, err := fake.Post(fakeslack.Message{Channel: p.channel, User: p.user, Text: p.text,
			ChannelType: map[bool]string{true: "im", false: "channel"}[strings.HasPrefix(p.channel, "D")]})
		if err != nil {
			return err
		}
		text := p.text
		if p.editTo != "" {
			if err := fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Acked(env) }); err != nil {
				return err
			}
			if _, err := fake.Edit(p.channel, ts, p.editTo); err != nil {
				return err
			}
			text = p.editTo
		}
		leaks := display.ScanNormalized(text)
		line := fmt.Sprintf("  %-9s %-8s %-58q", p.name, p.user, maskSpans(text, leaks))
		if p.editTo != "" {
			line = fmt.Sprintf("  %-9s %-8s %-58q", p.name, p.user, "(edited) "+maskSpans(text, leaks))
		}
		if len(leaks) == 0 {
			if err := fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Acked(env) }); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  kept\n", line)
			continue
		}
		if actions[leaks[0].RuleID] == store.ActionMonitor {
			if err := fake.Wait(waitCtx, func(*fakeslack.State) bool {
				ls, err := st.Leaks(ctx, store.LeakFilter{Channel: p.channel, Action: store.ActionMonitor})
				return err == nil && len(ls) > 0
			}); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  RECORDED, not deleted (regex %d is in monitor mode)\n", line, leaks[0].RuleID)
			continue
		}
		if err := fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.SuccessfulDeletes(p.channel, ts) > 0 }); err != nil {
			return fmt.Errorf("the leaking message was not deleted: %w", err)
		}
		deleted++
		fmt.Fprintf(out, "%s  DELETED after %s (regex %d, %s)\n", line, time.Since(posted).Round(time.Millisecond), leaks[0].RuleID, leaks[0].Description)
	}
	// Let the deleter and the notifier finish before reading the results.
	_ = fake.Wait(waitCtx, func(*fakeslack.State) bool {
		c, err := st.DeletionCounts(ctx)
		o, oerr := st.OutboxCounts(ctx)
		return err == nil && oerr == nil && c[store.StatusPending] == 0 && o[store.KindAuthor][store.OutboxPending] == 0 &&
			o[store.KindAlert][store.OutboxPending] == 0
	})
	stop()
	if err := <-done; err != nil {
		return err
	}

	fake.Snapshot(func(s *fakeslack.State) {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "What the authors saw (ephemeral, only to them):")
		for _, p := range s.Posts() {
			if p.Method == "chat.postEphemeral" {
				fmt.Fprintf(out, "  to %-8s %s\n", p.User, p.Text)
			}
		}
		fmt.Fprintln(out)
		fmt.Fprintln(out, "What the admins saw in the alert channel:")
		for _, p := range s.Posts() {
			if p.Method == "chat.postMessage" && p.Channel == demoAlerts {
				fmt.Fprintf(out, "  %s\n", p.Text)
			}
		}
	})

	fmt.Fprintln(out)
	fmt.Fprintln(out, "The leak log (securechat leaks list):")
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil {
		return err
	}
	if err := printLeaks(out, ls); err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%d of %d messages leaked and were deleted, 1 was recorded by a monitor rule; the database holds only masked excerpts.\n", deleted, len(demoPosts))
	fmt.Fprintln(out, "Next: create the Slack app (securechat manifest) and run 'securechat run'; see README.md.")
	return nil
}

// maskSpans replaces each match in text with its masked excerpt.
func maskSpans(text string, ms []detect.Match) string {
	var b strings.Builder
	last := 0
	for _, m := range ms {
		if m.Start < last {
			continue
		}
		b.WriteString(text[last:m.Start])
		b.WriteString(m.Excerpt)
		last = m.End
	}
	b.WriteString(text[last:])
	return b.String()
}

// printLeaks writes the leak table that 'leaks list' shows.
func printLeaks(w io.Writer, leaks []store.Leak) error {
	t := newTable(w, "ID", "DETECTED", "CHANNEL", "USER", "TS", "REGEX", "EXCERPT", "ACTION", "STATUS", "ATTEMPTS")
	for _, l := range leaks {
		rule := fmt.Sprint(l.RegexID)
		if l.Rule != "" {
			rule += " " + truncate(l.Rule, 30)
		}
		status := l.Status
		if status == "" {
			status = "-" // monitored: nothing to delete
		}
		t.row(fmt.Sprint(l.ID), formatTime(l.DetectedAt), l.Channel, l.User, l.TS, rule, l.Excerpt, l.Action, status, fmt.Sprint(l.Attempts))
	}
	return t.flush()
}
