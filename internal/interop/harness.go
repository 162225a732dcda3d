package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ErrNotReady is wrapped when a started server did not begin to listen in
// time.
var ErrNotReady = errors.New("interop: server not ready")

// Startup bounds how long a server may take to listen. ejabberd starts an
// Erlang VM, which takes seconds on a loaded two-core machine.
const Startup = 60 * time.Second

// Binary returns the path of a server program, looked up in PATH and then in
// /usr/sbin (where ejabberdctl lives, outside a normal user's PATH). When it
// is missing the test is skipped with a message naming pkg, the Debian
// package to install — or, with CI=true in the environment, fails.
func Binary(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	missing(t, fmt.Sprintf("%s not found; install the Debian package %q (apt-get install %s)", name, pkg, pkg))
	return ""
}

// RequireRoot skips (or, in CI, fails) a test that needs to run as root:
// ejabberdctl switches to the ejabberd user, which only root may do.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "not running as root: "+why)
	}
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("interop: " + msg + " (CI=true: the interop suite must run)")
	}
	t.Skip("interop: " + msg)
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server that must be told its port in a configuration file (Prosody,
// ejabberd, epmd), which binds it later. The port is drawn below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range): a port from that
// range, which a listener on port 0 is given, is also what the kernel hands
// the next outgoing connection of any process, and with suites running side
// by side one of them once took it before ejabberd bound it ("address
// already in use"). Below the range only another explicit bind can take
// it. Where the range cannot be read, the kernel picks as before.
func FreePort(t testing.TB) int {
	t.Helper()
	if start, ok := ephemeralStart(); ok && start-minPort >= 1000 {
		for range 100 {
			p := minPort + rand.IntN(start-minPort)
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue // taken: draw again
			}
			ln.Close()
			return p
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// minPort is the lowest port FreePort draws: above the well-known and the
// commonly registered ports that services on a test machine listen on.
const minPort = 10000

// ephemeralStart returns the first port of the kernel's ephemeral range.
func ephemeralStart() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	return n, err == nil && n > 0 && n <= 65535
}

// waitListening polls until something accepts TCP connections on addr.
// A server in another process gives no other signal that it is ready, so
// this is the one place the harness polls; it never sleeps to order events
// between our own goroutines.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: nothing listens on %s: %w", ErrNotReady, addr, err)
		case <-exited:
			return fmt.Errorf("%w: the server exited before listening on %s", ErrNotReady, addr)
		case <-tick.C:
		}
	}
}

// alive reports whether a process with this PID still exists (and is not a
// zombie awaiting its parent).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// stopPID ends a process we started: SIGTERM, then SIGKILL when it has not
// exited within grace. It waits until the process is gone.
func stopPID(pid int, grace time.Duration) error {
	if pid <= 0 || !alive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("interop: stopping pid %d: %w", pid, err)
	}
	if waitGone(pid, grace) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("interop: killing pid %d: %w", pid, err)
	}
	if !waitGone(pid, grace) {
		return fmt.Errorf("interop: pid %d survived SIGKILL", pid)
	}
	return nil
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// readPID reads a PID file.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("interop: pid file %s: %w", path, err)
	}
	return pid, nil
}

// logTail returns at most the last max bytes of a log file, so that a
// failing test prints what led to the failure without flooding the output.
func logTail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log at %s: %v)", path, err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "…\n" + string(b)
	}
	return string(b)
}

// logMax bounds the log printed for a failed test.
const logMax = 256 << 10

// Route is where a peer must connect to reach one of the test's domains.
type Route struct {
	Domain string
	Host   string // an IP literal, such as 127.0.0.1
	Port   int
}

// quoted quotes s for a Lua or Erlang configuration file. The harness
// only writes its own paths and domains, so rejecting anything unusual is
// simpler and safer than escaping it.
func quoted(s string) string {
	for _, r := range s {
		if r < 0x20 || r == '"' || r == '\\' || r == '\'' {
			panic(fmt.Sprintf("interop: unusual character %q in %q", r, s))
		}
	}
	return `"` + s + `"`
}
