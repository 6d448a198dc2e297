//go:build unix

package bot

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// goneHere reports whether instance id (host-pid, as the CLI names
// daemons) is a process of this host that no longer runs. Of another host,
// or of a name of another form, it knows nothing and says false. Taking
// the lease of a holder wrongly thought gone is harmless: every singleton
// job is idempotent in the database; the lease only saves doing it twice.
func goneHere(id string) bool {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(id, host+"-")
	if !ok || host == "" {
		return false
	}
	pid, err := strconv.Atoi(rest)
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}
