package malloc

import (
	"runtime"
	"testing"
)

// TestLimitArenas: on Linux with cgo (glibc, as on Debian) the cap is
// applied; elsewhere it is a no-op that says so.
func TestLimitArenas(t *testing.T) {
	got := LimitArenas(2)
	if want := runtime.GOOS == "linux"; got != want {
		t.Errorf("LimitArenas(2) = %v on %s, want %v", got, runtime.GOOS, want)
	}
}
