package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/internal/corpus"
	"github.com/securechat/securechat/internal/fakeslack"
)

// TestSoak streams SECURECHAT_SOAK messages (say 1000000) of realistic
// traffic (3% secrets, 1% pastes) through the fake Slack to the real binary
// with 1,000 rules, as fast as it acknowledges them, and reports the
// daemon's own resident memory (not the fake's) as it goes. It fails when
// the RSS grows by 10% or more between the first tenth and the end. It is
// skipped unless SECURECHAT_SOAK is set: at about 3,000 messages a second a
// million take several minutes.
//
//	SECURECHAT_SOAK=1000000 go test -count=1 -run TestSoak -v -timeout 60m .
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SECURECHAT_SOAK"))
	if n <= 0 {
		t.Skip("set SECURECHAT_SOAK to a number of messages to run the soak")
	}
	fake := fakeslack.New(fakeslack.Options{PingInterval: time.Second, ForgetAcked: true, EchoDeletes: new(bool)})
	defer fake.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "securechat.db")
	env := []string{"SECURECHAT_DB=" + db, "SLACK_APP_TOKEN=" + fake.AppToken(), "SLACK_USER_TOKEN=" + fake.UserToken(),
		"SLACK_API_URL=" + fake.APIURL(), "SECURECHAT_LOG_LEVEL=warn", "SECURECHAT_BREAKER=off", "SECURECHAT_METRICS_ADDR=127.0.0.1:" + freePort(t)}
	base, err := os.ReadFile("detect/testdata/patterns100.txt")
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.txt")
	if err := os.WriteFile(rules, []byte(string(base)+"\n"+strings.Join(corpus.GeneratedRules(900, 1), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, env, "regex", "import", "--format", "lines", "--action", "delete", rules); code != 0 {
		t.Fatalf("import: %s", tail(out, 2000))
	}
	p := start(t, env, "run")
	waitFor(t, fake, "connection", func(s *fakeslack.State) bool { return s.Connections() == 1 }, p.stderr.String)

	gen := corpus.New(corpus.Options{Seed: 3})
	const window = 1000 // envelopes in flight at most
	began := time.Now()
	var first float64
	for i := 1; i <= n; i++ {
		for {
			var unacked int
			fake.Snapshot(func(s *fakeslack.State) { unacked = s.Unacked() })
			if unacked < window {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if _, _, err := fake.Post(fakeslack.Message{Text: gen.Next().Text, Raw: true}); err != nil {
			t.Fatalf("post %d: %v\n%s", i, err, tail(p.stderr.String(), 2000))
		}
		if i%(n/10) == 0 {
			rss, hwm := memOf(t, p.cmd.Process.Pid)
			if first == 0 {
				first = rss
			}
			t.Logf("%8d messages  %6.0f msgs/s  daemon RSS %5.1f MB (peak %5.1f MB; %s)  %s", i, float64(i)/time.Since(began).Seconds(), rss, hwm, memSplit(t, p.cmd.Process.Pid), goMem(env))
		}
	}
	waitFor(t, fake, "every envelope acked", func(s *fakeslack.State) bool { return s.Unacked() == 0 }, p.stderr.String)
	rss, hwm := memOf(t, p.cmd.Process.Pid)
	t.Logf("end: %d messages in %s; daemon RSS %.1f MB (peak %.1f MB); first tenth %.1f MB; %s", n, time.Since(began).Round(time.Second), rss, hwm, first, goMem(env))
	if rss > first*1.10 {
		t.Errorf("daemon RSS grew from %.1f MB to %.1f MB (%.0f%%)", first, rss, 100*(rss/first-1))
	}
}

// memOf reads a process's resident and peak resident memory, in MB.
func memOf(t *testing.T, pid int) (rss, hwm float64) {
	m := memStatus(t, pid)
	return m["VmRSS:"], m["VmHWM:"]
}

// memSplit says how much of a process's RSS is anonymous memory (heaps)
// and how much is file-backed (the binary's pages, mapped files).
func memSplit(t *testing.T, pid int) string {
	m := memStatus(t, pid)
	return fmt.Sprintf("anon %.1f MB, file %.1f MB", m["RssAnon:"], m["RssFile:"])
}

// memStatus reads the memory lines of /proc/PID/status, in MB.
func memStatus(t *testing.T, pid int) map[string]float64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		out[fields[0]] = kb / 1024
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// goMem reads the daemon's Go memory figures from its /metrics: how much of
// its RSS is Go heap in use, and how much the Go runtime holds in all.
func goMem(env []string) string {
	addr := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SECURECHAT_METRICS_ADDR="); ok {
			addr = v
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "no metrics: " + err.Error()
	}
	defer resp.Body.Close()
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && (strings.HasPrefix(f[0], "go_memstats_") || strings.HasPrefix(f[0], "securechat_db_")) {
			got[f[0]], _ = strconv.ParseFloat(f[1], 64)
		}
	}
	mb := func(k string) float64 { return got["go_memstats_"+k+"_bytes"] / (1 << 20) }
	return fmt.Sprintf("Go heap in use %.1f MB, stacks %.1f MB, Go runtime total %.1f MB of which returned to the OS %.1f MB; SQLite connections %.0f open, %.0f closed",
		mb("heap_inuse"), mb("stack_inuse"), mb("sys"), mb("heap_released"), got["securechat_db_connections_open"], got["securechat_db_connections_closed_total"])
}
