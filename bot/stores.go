package bot

import (
	"context"
	"time"

	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/store"
)

// What each component needs of the system of record: a small interface per
// consumer, which *store.Store (SQLite or PostgreSQL) satisfies. A
// component's tests can give it a double of just this.

// progressStore is where the watermarks and this daemon's connection time
// are saved.
type progressStore interface {
	SaveProgress(ctx context.Context, marks map[string]string, connected time.Time, clean bool) error
}

// catchupStore is the catch-up's view: durable windows, the other
// replicas' presence, the name cache.
type catchupStore interface {
	progressStore
	OpenCatchupWindow(ctx context.Context, w store.CatchupWindow) (int64, error)
	CatchupWindows(ctx context.Context) ([]store.CatchupWindow, error)
	SaveCatchupProgress(ctx context.Context, windowID int64, channel string, p store.CatchupProgress) error
	CloseCatchupWindow(ctx context.Context, id int64) error
	AlertCatchupWindow(ctx context.Context, id int64, notes ...store.OutboxItem) (bool, error)
	OthersPresence(ctx context.Context) (store.Presence, error)
	SetNames(ctx context.Context, kind string, names map[string]string) error
	Unnamed(ctx context.Context, limit int, staleBefore time.Time) (conversations, users []string, err error)
}

var (
	_ notify.Outbox = (*store.Store)(nil)
	_ catchupStore  = (*store.Store)(nil)
	_ clusterStore  = (*store.Store)(nil)
)
