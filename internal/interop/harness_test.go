package interop

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePort: the ports FreePort gives can be bound, and, where the
// kernel says where its ephemeral range starts, lie below it, where no
// outgoing connection or listener on port 0 is given them.
func TestFreePort(t *testing.T) {
	start, ok := ephemeralStart()
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if ok && start-minPort >= 1000 && (p < minPort || p >= start) {
			t.Errorf("port %d, want one in [%d, %d)", p, minPort, start)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		ln.Close()
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 calls gave %d port(s): %v", len(seen), seen)
	}
}
