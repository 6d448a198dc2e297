package scan

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/store"
)

// TestAPausedDaemonLooksAtTheRulesFirst: when the last look at the rules
// generation is older than maxAge (the process was stopped, so its ticker
// did not run), an event is decided after a look, with a rule added
// meanwhile; a fresh view decides without one.
func TestAPausedDaemonLooksAtTheRulesFirst(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "securechat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddRegex(ctx, `6759[0-9]{12}`, "cards"); err != nil {
		t.Fatal(err)
	}
	r := NewRules(st, nil, metrics.New(), zerolog.Nop())
	r.MaxAge = time.Hour
	if err := r.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddRegex(ctx, `tok_[a-z]{12}`, "tokens"); err != nil {
		t.Fatal(err)
	}
	const text = "here: tok_abcdefghijkl"
	if v := r.forEvent(ctx).Decide(text, false); len(v.Findings) != 0 {
		t.Fatalf("a view younger than maxAge looked again: %+v", v.Findings)
	}
	stale := time.Now().Add(-2 * time.Hour)
	r.looked.Store(&stale)
	if v := r.forEvent(ctx).Decide(text, false); len(v.Findings) != 1 {
		t.Errorf("after a pause the new rule was not applied: %+v", v.Findings)
	}
}
