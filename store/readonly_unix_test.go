//go:build unix

package store_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/securechat/securechat/store"
)

// The child side of TestReadOnlyAsAnotherUser: the test binary, run again
// as another user, does one thing to the database and exits.
const childEnv = "SECURECHAT_STORE_TEST_CHILD"

func init() {
	what, path, ok := strings.Cut(os.Getenv(childEnv), ":")
	if !ok {
		return
	}
	ctx := context.Background()
	var err error
	switch what {
	case "read":
		var s *store.Store
		if s, err = store.OpenReadOnly(ctx, path); err == nil {
			_, err = s.Regexes(ctx)
			s.Close()
		}
	case "write":
		var s *store.Store
		if s, err = store.Open(ctx, path); err == nil {
			_, err = s.AddRegex(ctx, "written_[0-9]{6}", "by the owner")
			s.Close()
		}
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	os.Exit(0)
}

// asUser runs the test binary (copied to dir, where every user may run
// it) as uid, doing what to the database at path.
func asUser(t *testing.T, bin string, uid int, what, path string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childEnv+"="+what+":"+path)
	if uid != os.Getuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestReadOnlyAsAnotherUser runs securechat's read-only open as a user who
// is not the database's owner (test binaries run as root switch to uids 1
// and 65534; run as another user, the test is that user):
//   - on a database file and directory that user may only read, it reads;
//   - on a database in a directory that user may write, it reads and leaves
//     no -wal or -shm file behind, so the owner can still write.
func TestReadOnlyAsAnotherUser(t *testing.T) {
	sqliteOnly(t)
	const owner, reader = 1, 65534
	root := os.Getuid() == 0
	base, err := os.MkdirTemp("", "securechat-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(base, 0o755)
		filepath.Walk(base, func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o755); return nil })
		os.RemoveAll(base)
	})
	os.Chmod(base, 0o755)
	bin := filepath.Join(base, "store.test")
	copyFile(t, os.Args[0], bin, 0o755)

	for _, tt := range []struct {
		name     string
		dirMode  os.FileMode
		fileMode os.FileMode
		running  bool // the owner's daemon has the database open (its -wal and -shm exist)
	}{
		{"read-only file and directory", 0o555, 0o444, false},
		{"directory the reader may write", 0o777, 0o644, false},
		{"the owner's daemon running", 0o755, 0o644, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tt.name, " ", "-"))
			os.Mkdir(dir, 0o755)
			path := filepath.Join(dir, "securechat.db")
			ctx := context.Background()
			s, err := store.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddRegex(ctx, "abc_[0-9]{6}", "x"); err != nil {
				t.Fatal(err)
			}
			s.Close()
			readAs, ownerUID := os.Getuid(), os.Getuid()
			if root {
				readAs, ownerUID = reader, owner
				for _, p := range []string{dir, path} {
					if err := os.Chown(p, owner, owner); err != nil {
						t.Fatal(err)
					}
				}
			} else if tt.dirMode == 0o777 {
				t.Skip("needs root to run as two users")
			}
			os.Chmod(path, tt.fileMode)
			if tt.running {
				if !root {
					t.Skip("needs root to run as two users")
				}
				d, err := store.Open(ctx, path) // its -wal and -shm take the file's mode
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				if _, err := d.AddRegex(ctx, "running_[0-9]{6}", "in the -wal file"); err != nil {
					t.Fatal(err)
				}
			}
			os.Chmod(dir, tt.dirMode)
			if out, err := asUser(t, bin, readAs, "read", path); err != nil {
				t.Fatalf("read-only open as uid %d: %v\n%s", readAs, err, out)
			}
			if tt.running {
				return
			}
			for _, ext := range []string{"-wal", "-shm"} {
				if fi, err := os.Stat(path + ext); err == nil {
					t.Errorf("the read-only open left %s behind (owner uid %d)", path+ext, fi.Sys().(*syscall.Stat_t).Uid)
				}
			}
			if tt.dirMode == 0o777 {
				if out, err := asUser(t, bin, ownerUID, "write", path); err != nil {
					t.Errorf("the owner cannot write after another user's read: %v\n%s", err, out)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
}
