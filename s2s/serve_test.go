package s2s

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
)

// flakyListener fails its first Accept calls with a temporary error, as a
// listener out of file descriptors does.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

type tempError struct{}

func (tempError) Error() string   { return "accept: too many open files" }
func (tempError) Temporary() bool { return true }
func (tempError) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, tempError{}
	}
	return l.Listener.Accept()
}

// TestServeSurvivesTemporaryErrors: a temporary accept error does not end
// Serve; a permanent one does, and is returned.
func TestServeSurvivesTemporaryErrors(t *testing.T) {
	la := listen(t)
	fl := &flakyListener{Listener: listen(t)}
	fl.fails.Store(3)
	b := newNode(t, fl, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)})
	a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": b.addr})
	a.send(msgAB)
	b.nextDelivered()

	m, err := New(b.m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	broken := listen(t)
	broken.Close()
	if err := m.Serve(broken); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Serve on a closed listener: %v", err)
	}
}
