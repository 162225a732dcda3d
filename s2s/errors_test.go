package s2s

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// refuser answers every stream header with its own header and then what
// it is given: a stream error, for TestPeerStreamError.
func refuser(t *testing.T, reply string) net.Listener {
	return serveEach(t, func(conn net.Conn) {
		conn.SetDeadline(time.Now().Add(wait))
		r := wire.NewReader(conn, wire.DefaultLimits)
		h, err := r.ReadHeader()
		if err != nil {
			return
		}
		io.WriteString(conn, headerString(h.To, h.From)+reply)
		io.Copy(io.Discard, conn)
	})
}

// TestPeerStreamError: a host can read the <stream:error> a peer ended a
// link attempt with, from the Bounce and from the event, with errors.As.
func TestPeerStreamError(t *testing.T) {
	for i, tc := range []struct {
		reply, cond, text string
	}{
		{reply: "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", cond: "host-unknown"},
		{reply: "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>go away</text></stream:error>", cond: "policy-violation", text: "go away"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ln := refuser(t, tc.reply)
			a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"b.test": addrOf(ln)})
			a.send(msgAB)
			b := a.nextBounce()
			var se *StreamError
			if !errors.As(b.Err, &se) || se.Condition != tc.cond || se.Text != tc.text {
				t.Fatalf("bounce error %v: StreamError %+v, want %s %q", b.Err, se, tc.cond, tc.text)
			}
			if !errors.Is(b.Err, ErrNegotiation) {
				t.Errorf("bounce error %v does not wrap ErrNegotiation", b.Err)
			}
			e := waitEvent(t, a, LinkFailed)
			if !errors.As(e.Err, &se) || se.Condition != tc.cond {
				t.Errorf("event error %v", e.Err)
			}
		})
	}
}

// TestDeniedNamed: a policy refusal is ErrDenied for the host, in a
// bounce of Send and in the event of a refused incoming request.
func TestDeniedNamed(t *testing.T) {
	deny := withS2S(func(s *config.S2S) { s.DefaultPolicy = "deny" })
	a, b := pairNodes(t, nil, []nodeOpt{deny})
	b.send(msgBA)
	if bo := b.nextBounce(); !errors.Is(bo.Err, ErrDenied) {
		t.Errorf("bounce of a denied send: %v", bo.Err)
	}
	a.send(msgAB)
	a.nextBounce()
	if e := waitEvent(t, b, AuthFailed); !errors.Is(e.Err, ErrDenied) {
		t.Errorf("refused incoming request: %v", e.Err)
	}
}
