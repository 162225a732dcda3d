package s2s

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// mitm plays the remote server as an attacker between two servers would:
// it strips or fakes the STARTTLS exchange. It records every byte it reads.
type mitm struct {
	ln       net.Listener
	features string // the features it offers, children only
	answer   string // what it writes on <starttls/>; "" closes instead

	mu   sync.Mutex
	read bytes.Buffer
}

func newMITM(t *testing.T, features, answer string) *mitm {
	m := &mitm{ln: listen(t), features: features, answer: answer}
	go func() {
		for {
			conn, err := m.ln.Accept()
			if err != nil {
				return
			}
			go m.serve(conn)
		}
	}()
	t.Cleanup(func() { m.ln.Close() })
	return m
}

func (m *mitm) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.read.Write(p)
}

func (m *mitm) seen() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.read.String()
}

func (m *mitm) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	r := wire.NewReader(io.TeeReader(conn, m), wire.DefaultLimits)
	h, err := r.ReadHeader()
	if err != nil {
		return
	}
	io.WriteString(conn, headerString("evil.test", h.From))
	io.WriteString(conn, "<stream:features>"+m.features+"</stream:features>")
	for {
		e, err := r.Next()
		if err != nil {
			return
		}
		if e.Name.Local == "starttls" {
			if m.answer == "" {
				return
			}
			io.WriteString(conn, m.answer)
			// Whatever comes next is not TLS we can speak: read until
			// the peer gives up.
			io.Copy(m, conn)
			return
		}
	}
}

// The <starttls/> feature as peers offer it.
const (
	tlsOptional = "<starttls xmlns='" + starttls.NS + "'/>"
	tlsRequired = "<starttls xmlns='" + starttls.NS + "'><required/></starttls>"
)

// TestStartTLSDowngrade: with use_starttls = "required", a peer (or someone
// in the middle) that strips or fakes STARTTLS gets no stanza and no
// dialback key in plaintext; the stanza is bounced with ErrNegotiation.
func TestStartTLSDowngrade(t *testing.T) {
	db := string(dialbackFeature)
	for i, tc := range []struct {
		features, answer string
		hang             bool // the attacker stalls: our NegotiationTimeout ends it
	}{
		{db, "", false}, // no <starttls/> offered at all
		{"", "", false},
		{tlsOptional, "", false}, // offered, then the connection drops
		{db + tlsRequired, starttls.Failure, false},
		{db + tlsRequired, starttls.Proceed + "<stream:stream>", false},                             // plaintext glued to <proceed/>
		{db + tlsRequired, starttls.Proceed + "<message from='x@evil.test' to='a@a.test'/>", false}, // a stanza after <proceed/>
		{db + tlsRequired, "<message from='x@evil.test' to='a@a.test'/>", false},                    // no <proceed/>
		{db + tlsRequired, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", true},              // <proceed/>, then no handshake
		{db + tlsRequired, "<proceed xmlns='urn:example:not-tls'/>", false},                         // the wrong namespace
		{db + tlsRequired, starttls.Proceed + "\x16\x03\x01\x00\x05hello", false},                   // a fake handshake record
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			evil := newMITM(t, tc.features, tc.answer)
			a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"evil.test": addrOf(evil.ln)},
				withMode("required"), withConfig(func(c *Config) { c.NegotiationTimeout = time.Second }))
			a.send(`<message from='a.test' to='u@evil.test' id='secret-stanza'><body>for TLS only</body></message>`)
			bo := a.nextBounce()
			want := ErrNegotiation
			if tc.hang {
				want = context.DeadlineExceeded
			}
			if !errors.Is(bo.Err, want) || bo.Stanza.ID != "secret-stanza" {
				t.Fatalf("bounce %s: %v", bo.Condition, bo.Err)
			}
			if seen := evil.seen(); strings.Contains(seen, "secret-stanza") || strings.Contains(seen, "db:result") {
				t.Fatalf("leaked in plaintext: %s", seen)
			}
		})
	}
}

// TestIncomingDowngrade: against required, a peer that skips or games
// STARTTLS is refused and nothing it sends is delivered.
func TestIncomingDowngrade(t *testing.T) {
	b := authorityFor(t, []string{"x.test"}, withMode("required"))
	hdr := headerString("x.test", "b.test")
	for i, tc := range []struct {
		send string
		want string // the stream error; "tls" when the handshake fails instead
	}{
		{"<message from='a@x.test' to='b@b.test'/>", "policy-violation"},
		{"<db:result from='x.test' to='b.test'>00</db:result>", "policy-violation"},
		{"<db:verify from='x.test' to='b.test' id='1'>00</db:verify>", "policy-violation"},
		{starttls.StartTLS + "<message from='a@x.test' to='b@b.test'/>", "policy-violation"},
		{starttls.StartTLS, "tls"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			p := dialHostile(t, b, hdr)
			if _, err := p.r.Next(); err != nil { // features
				t.Fatal(err)
			}
			p.write(tc.send)
			if tc.want == "tls" {
				e, err := p.r.Next()
				if err != nil || e.Name.Local != "proceed" {
					t.Fatalf("after <starttls/>: %v %v", e.Name, err)
				}
				// Plaintext where the ClientHello should be.
				p.write("<message from='a@x.test' to='b@b.test'/>")
			} else if cond := p.streamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
			p.expectClosed()
			select {
			case s := <-b.delivered:
				t.Fatalf("delivered %+v", s)
			default:
			}
		})
	}
}
