package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/interact"
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/ruleset"
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
		Use: "demo",
		// It finishes what is in flight when interrupted: Run waits for it.
		Annotations: map[string]string{annotInterrupt: interruptFinishes},
		Short:       "See securechat work end to end, with a fake Slack on this machine",
		Long: `Run the whole pipeline on this machine with no Slack workspace: a fake Slack (Web API and
Socket Mode on 127.0.0.1), a temporary database with the README's example rules, the real
daemon, and a few messages posted through it. It shows what was deleted and the leak table.

With --db on its command line the demo writes to that file instead, so you can look at it
afterwards with 'securechat --db PATH leaks list'. It must be a new file or one an earlier
demo created (which is reset); any other database is refused. SECURECHAT_DB and the config
file's db are never used by the demo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Only a --db on this command line is used: SECURECHAT_DB and the
			// config file name the real database, which the demo's rules
			// (two of them deleting) must never reach.
			if a.cfg.dbFrom != fromFlag {
				dir, err := os.MkdirTemp("", "securechat-demo-")
				if err != nil {
					return fmt.Errorf("create a temporary directory: %w", err)
				}
				defer os.RemoveAll(dir)
				return runDemo(cmd.Context(), a, filepath.Join(dir, "securechat.db"), verbose)
			}
			if err := prepareDemoDB(cmd.Context(), a.cfg.DB); err != nil {
				return err
			}
			return runDemo(cmd.Context(), a, a.cfg.DB, verbose)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the daemon's own log lines")
	return cmd
}

// prepareDemoDB makes path ready for a demo: a new or empty file is used and
// marked as the demo's; a database an earlier demo created is reset; any
// other database, even one without rows, is refused, untouched.
func prepareDemoDB(ctx context.Context, path string) error {
	if store.IsPostgres(path) {
		// A PostgreSQL database is shared by replicas: demo rules written
		// there would be enforced by them on the real workspace.
		return &hintError{err: fmt.Errorf("demo --db %s: the demo runs on a SQLite file of its own, never on a PostgreSQL database (replicas may be using it)", store.Redact(path)),
			hint: "run 'securechat demo' without --db (it uses a temporary database), or give it a new file"}
	}
	if fi, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return nil
	}
	refuse := func(what string) error {
		return &hintError{err: fmt.Errorf("demo --db %s: %s; the demo never writes into a database it did not create (a daemon may be using it)", path, what),
			hint: "run 'securechat demo' without --db (it uses a temporary database), or give it a new file"}
	}
	// Read only: a refused demo must not even migrate someone's database.
	st, err := store.OpenReadOnly(ctx, path)
	if errors.Is(err, store.ErrOldSchema) {
		return refuse("that is a securechat database of an earlier release")
	}
	if err != nil {
		return fmt.Errorf("demo --db %s: %w", path, err)
	}
	demo, err := st.IsDemo(ctx)
	st.Close()
	switch {
	case err != nil:
		return err
	case !demo:
		return refuse("that securechat database was not created by the demo")
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reset the demo's database: %w", err)
		}
	}
	return nil
}

// demo is one run of the demo: it owns the fake Slack, the store and the
// daemon, and close releases them in order, waiting for the daemon first.
type demo struct {
	a      *app
	out    io.Writer
	fake   *fakeslack.Server
	st     *store.Store
	rules  *ruleset.Snapshot
	stop   context.CancelFunc
	done   chan error // the daemon's Run result; nil until it starts
	result error      // what Run returned, once waited for
	waited bool
}

func runDemo(ctx context.Context, a *app, dbPath string, verbose bool) (err error) {
	d := &demo{a: a, out: a.Stdout, fake: fakeslack.New(fakeslack.Options{PingInterval: time.Second, BotToken: demoBotToken})}
	defer func() { err = errors.Join(err, d.close()) }()
	if err := d.setup(ctx, dbPath, verbose); err != nil {
		return err
	}
	deleted, err := d.postAndObserve(ctx)
	if err != nil {
		return err
	}
	if err := d.buttons(ctx); err != nil {
		return err
	}
	if err := d.wait(); err != nil {
		return err
	}
	return d.report(ctx, deleted)
}

// setup opens the store, adds the demo rules and starts the daemon against
// the fake Slack, returning once it is connected.
func (d *demo) setup(ctx context.Context, dbPath string, verbose bool) error {
	st, err := store.Open(ctx, dbPath, store.WithClock(d.a.Now))
	if err != nil {
		return err
	}
	d.st = st
	if err := st.MarkDemo(ctx); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "securechat demo: the whole pipeline on this machine, no Slack workspace needed.")
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "  fake Slack   %s (Web API) and Socket Mode, on 127.0.0.1\n", d.fake.APIURL())
	fmt.Fprintf(d.out, "  database     %s\n", dbPath)
	pw, _ := detect.LookupBuiltin("password-assignment")
	monitored := ruleset.FromBuiltin(pw)
	monitored.Action = store.ActionMonitor
	var stored []store.Regex
	for _, r := range append(slices.Clone(demoRules), monitored) {
		reg, err := st.AddRule(ctx, r)
		var dup *store.DuplicateError
		if errors.As(err, &dup) {
			reg, err = st.Regex(ctx, dup.ID)
		}
		if err != nil {
			return err
		}
		stored = append(stored, reg)
		fmt.Fprintf(d.out, "  regex %-6d %s  (%s, %s)\n", reg.ID, truncate(reg.Pattern, 60), reg.Description, reg.Action)
	}
	d.rules = ruleset.New(stored, nil, nil)

	logLevel := zerolog.WarnLevel
	if verbose {
		logLevel = zerolog.InfoLevel
	}
	daemon := bot.New(st, d.a.newLogger().Level(logLevel), bot.Options{
		AppToken: d.fake.AppToken(), UserToken: d.fake.UserToken(), APIURL: d.fake.APIURL(),
		ReloadInterval: 200 * time.Millisecond, RetryMax: time.Second, Now: d.a.Now,
		Notify: bot.Notify{Author: "ephemeral", AuthorMessage: d.a.cfg.Notify.AuthorMessage, AlertChannel: demoAlerts, BotToken: demoBotToken},
		Admins: []string{demoAdmin}, AllowlistKey: []byte("securechat-demo-allowlist-key"),
	})
	runCtx, stop := context.WithCancel(ctx)
	d.stop, d.done = stop, make(chan error, 1)
	go func() { d.done <- daemon.Run(runCtx) }()
	waitCtx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Connections() > 0 }); err != nil {
		if derr := d.wait(); derr != nil {
			return derr
		}
		return fmt.Errorf("the daemon did not connect to the fake Slack: %w", err)
	}
	fmt.Fprintln(d.out, "  daemon       connected over Socket Mode")
	return nil
}

// The demo's bot user and admin.
const (
	demoBotToken = "xoxb-1000000000001-2000000000002-demobottoken"
	demoAdmin    = fakeslack.AdminUserID
)

// buttons shows the Slack-native actions: the author of the first deleted
// message presses "Not a secret" on their notice and gives a reason, the
// admins get the report with its buttons, and an admin presses "Allow this
// value".
func (d *demo) buttons(ctx context.Context) error {
	waitCtx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	var notice *fakeslack.PostCall
	d.fake.Snapshot(func(s *fakeslack.State) {
		for _, p := range s.Posts() {
			if p.Method == "chat.postEphemeral" && strings.Contains(p.Blocks, interact.ActionNotSecret) {
				notice = &p
				break
			}
		}
	})
	if notice == nil {
		return errors.New("demo: no author notice with buttons was posted")
	}
	ref := interact.ButtonValues(notice.Blocks)[interact.ActionNotSecret]
	fmt.Fprintln(d.out)
	fmt.Fprintln(d.out, "Buttons (with the bot user): the author reports, an admin decides:")
	fmt.Fprintf(d.out, "  %-8s presses \"Not a secret\" on the notice and writes why\n", notice.User)
	if _, _, err := d.fake.SendClick(fakeslack.Click{User: notice.User, ActionID: interact.ActionNotSecret, Value: ref,
		Channel: notice.Channel, Ephemeral: true}); err != nil {
		return err
	}
	var modal fakeslack.ViewCall
	if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool {
		for _, v := range s.Views() {
			if v.Method == "views.open" {
				modal = v
				return true
			}
		}
		return false
	}); err != nil {
		return fmt.Errorf("demo: the report modal did not open: %w", err)
	}
	var view struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
	}
	if err := json.Unmarshal([]byte(modal.View), &view); err != nil {
		return err
	}
	if _, err := d.fake.SendViewSubmission(notice.User, view.CallbackID, view.PrivateMetadata,
		map[string]map[string]string{"reason": {"reason_input": "it is the test card from our payment docs"}}); err != nil {
		return err
	}
	var report fakeslack.PostCall
	if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool {
		for _, p := range s.Posts() {
			if p.Method == "chat.postMessage" && p.Channel == demoAlerts && strings.Contains(p.Blocks, interact.ActionKeep) {
				report = p
				return true
			}
		}
		return false
	}); err != nil {
		return fmt.Errorf("demo: the report did not reach the admins: %w", err)
	}
	fmt.Fprintf(d.out, "  admins   see: %s\n", report.Text)
	fmt.Fprintf(d.out, "  %-8s presses \"Allow this value\" on it\n", demoAdmin)
	if _, _, err := d.fake.SendClick(fakeslack.Click{User: demoAdmin, ActionID: interact.ActionAllow,
		Value: interact.ButtonValues(report.Blocks)[interact.ActionAllow], Channel: demoAlerts, MessageTS: report.TS, Message: &report}); err != nil {
		return err
	}
	var updated fakeslack.PostCall
	if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool {
		for _, p := range s.Posts() {
			if p.Method == "chat.update" {
				updated = p
				return true
			}
		}
		return false
	}); err != nil {
		return fmt.Errorf("demo: the alert was not updated: %w", err)
	}
	_, line, _ := strings.Cut(updated.Text, "\n")
	fmt.Fprintf(d.out, "  alert    updated: %s\n", line)
	fmt.Fprintln(d.out, "  (the same value no longer counts as a leak; 'securechat audit' shows who did it)")
	return nil
}

// demoTimeout bounds each wait of the demo.
const demoTimeout = 20 * time.Second

// postAndObserve posts the demo messages, prints what became of each and
// returns how many were deleted. It returns once the deleter and the
// notifier have nothing left to do.
func (d *demo) postAndObserve(ctx context.Context) (int, error) {
	fmt.Fprintln(d.out)
	fmt.Fprintln(d.out, "Members post (secrets shown masked here too):")
	waitCtx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	deleted := 0
	for _, p := range demoPosts {
		posted := d.a.Now()
		ts, env, err := d.fake.Post(fakeslack.Message{Channel: p.channel, User: p.user, Text: p.text,
			ChannelType: map[bool]string{true: "im", false: "channel"}[strings.HasPrefix(p.channel, "D")]})
		if err != nil {
			return 0, err
		}
		text := p.text
		if p.editTo != "" {
			if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Acked(env) }); err != nil {
				return 0, err
			}
			if _, err := d.fake.Edit(p.channel, ts, p.editTo); err != nil {
				return 0, err
			}
			text = p.editTo
		}
		v := d.rules.Decide(detect.Normalize(text), false)
		shown := maskSpans(detect.Normalize(text), v.Findings)
		if p.editTo != "" {
			shown = "(edited) " + shown
		}
		line := fmt.Sprintf("  %-9s %-8s %-58q", p.name, p.user, shown)
		switch {
		case len(v.Findings) == 0:
			if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Acked(env) }); err != nil {
				return 0, err
			}
			fmt.Fprintf(d.out, "%s  kept\n", line)
		case !v.Delete || strings.HasPrefix(p.channel, "D"):
			if err := d.fake.Wait(waitCtx, func(*fakeslack.State) bool {
				ls, err := d.st.Leaks(ctx, store.LeakFilter{Channel: p.channel})
				return err == nil && len(ls) > 0
			}); err != nil {
				return 0, err
			}
			why := fmt.Sprintf("regex %d is in monitor mode", v.Findings[0].RegexID)
			if v.Delete {
				why = "Slack does not let admins delete DMs; the author is told to"
			}
			fmt.Fprintf(d.out, "%s  RECORDED, not deleted (%s)\n", line, why)
		default:
			if err := d.fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.SuccessfulDeletes(p.channel, ts) > 0 }); err != nil {
				return 0, fmt.Errorf("the leaking message was not deleted: %w", err)
			}
			deleted++
			fmt.Fprintf(d.out, "%s  DELETED after %s (regex %d, %s)\n", line, d.a.Now().Sub(posted).Round(time.Millisecond), v.Findings[0].RegexID, v.Findings[0].Rule)
		}
	}
	// Let the deleter and the notifier finish before the results are read.
	_ = d.fake.Wait(waitCtx, func(*fakeslack.State) bool {
		c, err := d.st.DeletionCounts(ctx)
		o, oerr := d.st.OutboxCounts(ctx)
		return err == nil && oerr == nil && c[store.StatusPending] == 0 && o[store.KindAuthor][store.OutboxPending] == 0 &&
			o[store.KindAlert][store.OutboxPending] == 0
	})
	return deleted, nil
}

// report prints what the authors and the admins saw, and the leak log.
func (d *demo) report(ctx context.Context, deleted int) error {
	d.fake.Snapshot(func(s *fakeslack.State) {
		fmt.Fprintln(d.out)
		fmt.Fprintln(d.out, "What the authors saw (ephemeral, only to them):")
		for _, p := range s.Posts() {
			if p.Method == "chat.postEphemeral" {
				fmt.Fprintf(d.out, "  to %-8s %s\n", p.User, p.Text)
			}
		}
		fmt.Fprintln(d.out)
		fmt.Fprintln(d.out, "What the admins saw in the alert channel:")
		for _, p := range s.Posts() {
			if p.Method == "chat.postMessage" && p.Channel == demoAlerts {
				fmt.Fprintf(d.out, "  %s\n", p.Text)
			}
		}
	})
	fmt.Fprintln(d.out)
	fmt.Fprintln(d.out, "The leak log (securechat leaks list):")
	ls, err := d.st.Leaks(ctx, store.LeakFilter{})
	if err != nil {
		return err
	}
	if err := printLeaks(d.out, ls); err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "%d of %d messages leaked and were deleted; 1 DM was recorded (Slack does not let admins delete members' DMs) and its author told; 1 was recorded by a monitor rule. The database holds only masked excerpts.\n", deleted, len(demoPosts))
	fmt.Fprintln(d.out, "Next: create the Slack app (securechat manifest) and run 'securechat run'; see README.md.")
	return nil
}

// wait stops the daemon, if it was started, and returns what its Run
// returned. It may be called more than once.
func (d *demo) wait() error {
	if d.done == nil {
		return nil
	}
	if !d.waited {
		d.stop()
		d.result, d.waited = <-d.done, true
	}
	return d.result
}

// close stops and waits for the daemon, then closes the store and the fake
// Slack: the store never closes under a live daemon.
func (d *demo) close() error {
	var err error
	if !d.waited {
		err = d.wait() // not reported yet: runDemo stopped early
	}
	if d.st != nil {
		err = errors.Join(err, d.st.Close())
	}
	d.fake.Close()
	return err
}

// maskSpans replaces each finding in text with its masked excerpt.
func maskSpans(text string, ms []store.Finding) string {
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
