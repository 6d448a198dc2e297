package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/internal/syncbuf"
	"github.com/securechat/securechat/store"
)

// These tests build the real binary and run it as an operator would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "securechat-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "securechat")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("go build: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan error
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{stderr: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("process still running after %v\n%s", within, p.stderr.String())
		return -1
	}
}

func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func waitFor(t *testing.T, fake *fakeslack.Server, what string, cond func(*fakeslack.State) bool, logs func() string) {
	t.Helper()
	// Generous: a deletion whose chat.delete was in flight when the
	// daemon was killed is retried once its 40 s claim has passed.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := fake.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v\n%s", what, err, logs())
	}
}

func TestDaemonSurvivesSIGKILLAndHotReloadAcrossProcesses(t *testing.T) {
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond})
	defer fake.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "securechat.db")
	cfg := filepath.Join(dir, "securechat.toml")
	os.WriteFile(cfg, []byte("[daemon]\nretry_max = \"1s\"\nreload_interval = \"200ms\"\n[log]\nformat = \"json\"\n"), 0o600)
	env := []string{"SECURECHAT_DB=" + db, "SECURECHAT_CONFIG=" + cfg, "SLACK_APP_TOKEN=" + fake.AppToken(),
		"SLACK_USER_TOKEN=" + fake.UserToken(), "SLACK_API_URL=" + fake.APIURL()}
	if out, code := runCLI(t, env, "regex", "add", `.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*`, "-d", "Maestro"); code != 0 {
		t.Fatalf("regex add: %d %s", code, out)
	}

	// Slack fails every deletion for now.
	for range 200 {
		fake.Script("chat.delete", fakeslack.Response{Status: 500})
	}
	first := start(t, env, "run")
	waitFor(t, fake, "connection", func(s *fakeslack.State) bool { return s.Connections() == 1 }, first.stderr.String)
	var tss, envs []string
	for _, text := range []string{"card 6759649826438453", "card 676100041090", "again 6759649826438453"} {
		ts, env, err := fake.Post(fakeslack.Message{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		tss, envs = append(tss, ts), append(envs, env)
	}
	waitFor(t, fake, "acks and failing delete attempts", func(s *fakeslack.State) bool {
		for _, e := range envs {
			if !s.Acked(e) {
				return false
			}
		}
		return len(s.Deletes()) >= 3
	}, first.stderr.String)
	// Kill between attempts, once every failure is on disk. (A kill during a
	// call is fine too, but its claim delays the retry by 20 s.)
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "failed attempts recorded", func(*fakeslack.State) bool {
		ls, err := st.Leaks(context.Background(), store.LeakFilter{})
		if err != nil || len(ls) != 3 {
			return false
		}
		for _, l := range ls {
			if l.Attempts == 0 || l.Status != store.StatusPending {
				return false
			}
		}
		return true
	}, first.stderr.String)
	st.Close()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 5*time.Second)

	// Slack recovers; the restarted daemon finishes the pending deletions.
	fake.ClearScript("chat.delete")
	second := start(t, env, "run")
	for _, ts := range tss {
		waitFor(t, fake, "deletion of "+ts+" after restart", func(s *fakeslack.State) bool {
			return s.SuccessfulDeletes("C0GENERAL01", ts) == 1
		}, second.stderr.String)
	}

	// A regex added by another process applies without a restart.
	if out, code := runCLI(t, env, "regex", "add", `AKIA[A-Z2-7]{16}`, "-d", "AWS"); code != 0 {
		t.Fatalf("regex add: %d %s", code, out)
	}
	waitFor(t, fake, "reload", func(*fakeslack.State) bool { return strings.Contains(second.stderr.String(), `"rules":2`) }, second.stderr.String)
	ts, _, err := fake.Post(fakeslack.Message{Text: "AKIAIOSFODNN7EXAMPL2"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "hot-reloaded rule", func(s *fakeslack.State) bool { return s.SuccessfulDeletes("C0GENERAL01", ts) == 1 }, second.stderr.String)

	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0\n%s", code, second.stderr.String())
	}
	fake.Snapshot(func(s *fakeslack.State) {
		for _, ts := range tss {
			if n := s.SuccessfulDeletes("C0GENERAL01", ts); n != 1 {
				t.Errorf("%s deleted %d times", ts, n)
			}
		}
	})
	out, code := runCLI(t, env, "leaks", "list", "--status", "deleted", "--json")
	if code != 0 || strings.Count(out, `"status": "deleted"`) != 4 {
		t.Errorf("leaks list after restart: %d\n%s", code, out)
	}
	for _, secret := range []string{"6759649826438453", "676100041090", "AKIAIOSFODNN7EXAMPL2"} {
		if strings.Contains(first.stderr.String()+second.stderr.String(), secret) {
			t.Errorf("daemon logs contain %s", secret)
		}
		files, _ := filepath.Glob(db + "*")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains %s", f, secret)
			}
		}
	}
}

func TestDaemonExitsOnBadTokens(t *testing.T) {
	fake := fakeslack.New(fakeslack.Options{})
	defer fake.Close()
	db := filepath.Join(t.TempDir(), "securechat.db")
	tests := []struct {
		name      string
		app, user string
		says      []string
	}{
		{"missing app token", "", fake.UserToken(), []string{"SLACK_APP_TOKEN is not set", "connections:write"}},
		{"bot token as user token", fake.AppToken(), "xoxb-1234-5678-abcdefgh", []string{"SLACK_USER_TOKEN must be a user token", "bot token"}},
		{"revoked user token", fake.AppToken(), "xoxp-1-2-3-revokedtoken", []string{"SLACK_USER_TOKEN was refused by Slack (invalid_auth)"}},
		{"wrong app token", "xapp-1-A1-1-wrongwrongwrong", fake.UserToken(), []string{"SLACK_APP_TOKEN was refused by Slack (invalid_auth)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"SECURECHAT_DB=" + db, "SLACK_APP_TOKEN=" + tt.app, "SLACK_USER_TOKEN=" + tt.user, "SLACK_API_URL=" + fake.APIURL()}
			p := start(t, env, "run", "--allow-empty")
			if code := p.wait(t, 15*time.Second); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			for _, s := range tt.says {
				if !strings.Contains(p.stderr.String(), s) {
					t.Errorf("stderr does not say %q:\n%s", s, p.stderr.String())
				}
			}
		})
	}
}

// TestRunRefusesAnEmptyDatabase: the usual mistake, rules added to one file
// and the daemon pointed at another, exits 2 (systemd's
// RestartPreventExitStatus=2 keeps it from looping) and names the file.
func TestRunRefusesAnEmptyDatabase(t *testing.T) {
	fake := fakeslack.New(fakeslack.Options{})
	defer fake.Close()
	db := filepath.Join(t.TempDir(), "securechat.db")
	env := []string{"SECURECHAT_DB=" + db, "SLACK_APP_TOKEN=" + fake.AppToken(), "SLACK_USER_TOKEN=" + fake.UserToken(), "SLACK_API_URL=" + fake.APIURL()}
	out, code := runCLI(t, env, "run")
	if code != 2 || !strings.Contains(out, "no enabled regex in "+db) || !strings.Contains(out, "--allow-empty") {
		t.Errorf("run on an empty database: exit %d\n%s", code, out)
	}
	fake.Snapshot(func(s *fakeslack.State) {
		if s.Opens() != 0 {
			t.Error("it connected to Slack before refusing")
		}
	})
}

// TestDefaultDatabaseIsNotTheCurrentDirectory: with no database configured,
// commands share one file under the user's state directory, whatever the
// current directory; a securechat.db left in the current directory by an
// earlier release is refused with a hint, not silently replaced.
func TestDefaultDatabaseIsNotTheCurrentDirectory(t *testing.T) {
	home, work1, work2 := t.TempDir(), t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_STATE_HOME=", "STATE_DIRECTORY=", "SECURECHAT_DB=", "SECURECHAT_CONFIG="}
	run := func(dir string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	if out, code := run(work1, "regex", "add", `tok_[a-z0-9]{20}`); code != 0 {
		t.Fatalf("regex add: %s", out)
	}
	if out, code := run(work2, "regex", "list"); code != 0 || !strings.Contains(out, "tok_") {
		t.Errorf("regex list from another directory does not see the rule: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "state", "securechat", "securechat.db")); err != nil {
		t.Errorf("no database under ~/.local/state/securechat: %v", err)
	}
	if err := os.WriteFile(filepath.Join(work2, "securechat.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(work2, "regex", "list")
	if code != 2 || !strings.Contains(out, "exists in the current directory") || !strings.Contains(out, "SECURECHAT_DB=") {
		t.Errorf("a ./securechat.db is not pointed out: exit %d\n%s", code, out)
	}
}

// TestFirstSignalDuringAuthRetriesIsACleanStop: while run is still retrying
// auth.test (Slack unreachable), the first SIGTERM stops it with exit 0.
func TestFirstSignalDuringAuthRetriesIsACleanStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/api/"
	ln.Close() // connection refused from now on
	db := filepath.Join(t.TempDir(), "securechat.db")
	env := []string{"SECURECHAT_DB=" + db, "SLACK_APP_TOKEN=xapp-1-A1-123456789-abcdef", "SLACK_USER_TOKEN=xoxp-123456789-abcdef", "SLACK_API_URL=" + dead}
	p := start(t, env, "run", "--allow-empty")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), "auth.test failed; retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("no auth.test retry seen:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after one SIGTERM during auth retries, want 0\n%s", code, p.stderr.String())
	}
}

func TestDemo(t *testing.T) {
	out, code := runCLI(t, nil, "demo")
	if code != 0 {
		t.Fatalf("demo exit %d:\n%s", code, out)
	}
	for _, want := range []string{"3 of 6 messages leaked and were deleted", "1 DM was recorded", "kept", "DELETED", "************8453"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The leak log: each message's status word.
	for _, want := range []string{`delete\s+deleted\s+1\s+-\n`, `delete\s+undeletable\s+0\s+-\n`, `monitor\s+monitored\s+0\s+-\n`,
		`delete\s+deleted\s+1\s+not a secret \(allowed\)\n`,
		// The buttons: a member reports, an admin allows.
		`presses "Not a secret"`, `see: .*is \*not a secret\*.*Why: .it is the test card`, `updated: .*allowed by <@U0ADMIN0001>`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("demo's leak log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"6759649826438453", "676100041090", "AKIAIOSFODNN7EXAMPL2"} {
		if strings.Contains(out, secret) {
			t.Errorf("demo printed the secret %s", secret)
		}
	}
}

// TestSecondSignalExitsAtOnce stops a daemon whose chat.delete call is slow:
// the first SIGTERM waits for the call in flight, a second one exits at once
// with status 130.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond})
	defer fake.Close()
	db := filepath.Join(t.TempDir(), "securechat.db")
	env := []string{"SECURECHAT_DB=" + db, "SLACK_APP_TOKEN=" + fake.AppToken(), "SLACK_USER_TOKEN=" + fake.UserToken(),
		"SLACK_API_URL=" + fake.APIURL(), "SECURECHAT_LOG_FORMAT=json"}
	if out, code := runCLI(t, env, "regex", "add", `6759[0-9]{12}`); code != 0 {
		t.Fatalf("regex add: %s", out)
	}
	fake.Script("chat.delete", fakeslack.Response{Delay: 3 * time.Second, Status: 500})
	p := start(t, env, "run")
	waitFor(t, fake, "connection", func(s *fakeslack.State) bool { return s.Connections() == 1 }, p.stderr.String)
	_, envID, err := fake.Post(fakeslack.Message{Text: "card 6759649826438453"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "ack", func(s *fakeslack.State) bool { return s.Acked(envID) }, p.stderr.String)
	time.Sleep(300 * time.Millisecond) // the deleter is now in its slow call
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Fatalf("exited before the call in flight finished:\n%s", p.stderr.String())
	case <-time.After(700 * time.Millisecond):
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 3*time.Second); code != 130 {
		t.Errorf("exit code %d after a second signal, want 130\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "second signal, exiting now") {
		t.Errorf("no word about the second signal:\n%s", p.stderr.String())
	}
}
