package scan

import (
	"context"
	"time"

	"github.com/securechat/securechat/store"
)

// LeakRecorder is the pipeline's view: a leak and its deletion in one
// transaction, with the breaker weighed in it.
type LeakRecorder interface {
	RecordLeak(ctx context.Context, msg store.Message, findings []store.Finding, deleteMsg bool, notes ...store.OutboxItem) (store.RecordResult, error)
	RecordLeakWeighed(ctx context.Context, msg store.Message, findings []store.Finding, deleteMsg bool, b store.Breaker,
		notes func(fs []store.Finding, deleteMsg bool) []store.OutboxItem) (store.RecordResult, []store.Finding, []store.Trip, error)
}

// ScanCounter is the breaker's view: the shared count of messages scanned.
type ScanCounter interface {
	AddScanned(ctx context.Context, daemon string, t time.Time, n int, keep time.Duration) error
}

var (
	_ LeakRecorder = (*store.Store)(nil)
	_ ScanCounter  = (*store.Store)(nil)
)
