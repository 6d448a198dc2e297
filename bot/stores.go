package bot

import (
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/store"
)

// What each component needs of the system of record: a small interface per
// consumer, which *store.Store (SQLite or PostgreSQL) satisfies. A
// component's tests can give it a double of just this.

var (
	_ notify.Outbox = (*store.Store)(nil)
	_ clusterStore  = (*store.Store)(nil)
)
