package catchup

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/scan"
	"github.com/securechat/securechat/bot/socket"
	"github.com/securechat/securechat/store"
)

type gauge struct{}

func (gauge) Set(float64) {}

// TestProgressWritesOnlyWhatMoved: an idle daemon writes its last connection
// time every heartbeatEvery, not at every tick; a moved watermark is written
// at the next tick; the final save always writes, with the clean flag.
func TestProgressWritesOnlyWhatMoved(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	conn := socket.NewState(gauge{})
	conn.Set(true)
	mk := scan.NewMarks(nil)
	p := &Progress{Store: st, Marks: mk, Conn: conn, Log: zerolog.Nop(), Now: func() time.Time { return now }}
	last := func() time.Time {
		t.Helper()
		pr, err := st.Presence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return pr.LastConnected
	}
	p.tick(ctx) // the first tick always writes
	if !last().Equal(now) {
		t.Fatalf("first tick wrote %v", last())
	}
	first := now
	now = now.Add(10 * time.Second)
	p.tick(ctx)
	if !last().Equal(first) {
		t.Errorf("an idle tick within %s wrote", heartbeatEvery)
	}
	mk.Handled("C1", "1764580000.000100")
	p.tick(ctx)
	if wm, _ := st.Watermarks(ctx); wm["C1"] != "1764580000.000100" || !last().Equal(now) {
		t.Errorf("a moved watermark was not written: %v, %v", wm, last())
	}
	now = now.Add(heartbeatEvery)
	p.tick(ctx)
	if !last().Equal(now) {
		t.Errorf("the heartbeat was not written after %s", heartbeatEvery)
	}
	now = now.Add(time.Second)
	p.Finish(ctx, true)
	if pr, _ := st.Presence(ctx); !pr.Clean || !pr.LastConnected.Equal(now) {
		t.Errorf("finish wrote %+v", pr)
	}
}
