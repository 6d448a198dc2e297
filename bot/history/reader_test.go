package history

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/internal/syncbuf"
)

var errStop = errors.New("stop")

// TestHistoryReaderSlowsToTier1OnShortPages: a page shorter than asked (15,
// Slack's Tier 1 page) with more to come slows the method to one request a
// minute before any 429.
func TestHistoryReaderSlowsToTier1OnShortPages(t *testing.T) {
	f := fakeslack.New(fakeslack.Options{LiveClock: true, HistoryPage: 15, PingInterval: -1})
	defer f.Close()
	for i := range 20 {
		f.PostQuiet(fakeslack.Message{Text: fmt.Sprintf("m %d", i)})
	}
	logs := &syncbuf.Buffer{}
	h := NewReader(http.DefaultClient, f.APIURL(), f.UserToken(), Pace{PerMinute: 6000, PageSize: 200}, metrics.New(), zerolog.New(logs), time.Now)
	err := h.Window(context.Background(), Conversation{ID: "C0GENERAL01", Type: "channel"}, Span{PageDone: func(string) error { return errStop }},
		func(Message) error { return nil })
	if !errors.Is(err, errStop) {
		t.Fatalf("window = %v", err)
	}
	if iv := h.interval["conversations.history"]; iv != time.Minute {
		t.Errorf("spacing after a short page = %s, want 1m", iv)
	}
	if !strings.Contains(logs.String(), "Tier 1") {
		t.Errorf("no log of the slowdown: %s", logs.String())
	}
}

// TestHistoryReaderWaitsOutRetryAfter: a 429 is retried after its
// Retry-After (at least a second), and halves the method's pace.
func TestHistoryReaderWaitsOutRetryAfter(t *testing.T) {
	f := fakeslack.New(fakeslack.Options{LiveClock: true, PingInterval: -1})
	defer f.Close()
	f.PostQuiet(fakeslack.Message{Text: "m"})
	f.Script("conversations.history", fakeslack.Response{Status: 429, RetryAfter: "0"})
	h := NewReader(http.DefaultClient, f.APIURL(), f.UserToken(), Pace{PerMinute: 6000, PageSize: 200}, metrics.New(), zerolog.Nop(), time.Now)
	start := time.Now()
	n := 0
	if err := h.Window(context.Background(), Conversation{ID: "C0GENERAL01"}, Span{}, func(Message) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 || time.Since(start) < time.Second {
		t.Errorf("read %d messages after %s; want 1, after at least the 1 s floor of Retry-After: 0", n, time.Since(start))
	}
	if iv := h.interval["conversations.history"]; iv != 20*time.Millisecond {
		t.Errorf("spacing after a 429 = %s, want twice 10ms", iv)
	}
}

// TestTimestamps: Slack ts compare numerically, whatever their length.
func TestTimestamps(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1764580000.000100", "1764580000.000200", -1},
		{"1764580001.000000", "1764580000.999999", 1},
		{"999999999.000001", "1000000000.000000", -1},
		{"1764580000.1", "1764580000.100000", 0},
	}
	for _, tt := range tests {
		if got := TSCompare(tt.a, tt.b); (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("tsCompare(%s, %s) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	if got := TimeOfTS(TSOf(now)); !got.Equal(now) {
		t.Errorf("timeOfTS(tsOf(%v)) = %v", now, got)
	}
	if TSAfter("", "1.0") || !TSAfter("1.0", "") {
		t.Error("tsAfter with an empty ts")
	}
}
