package dialback

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// This file wires the three roles together over real streams: a minimal
// s2s stream harness (header with xmlns:db, one reader goroutine per stream
// dispatching top-level elements) over net.Pipe and loopback TCP.

const streamNS = "http://etherx.jabber.org/streams"

// verifyMode says how a test server behaves as an authoritative server.
type verifyMode int

const (
	answerVerify       verifyMode = iota // answer and keep the stream
	answerThenClose                      // answer, then close at once (verification-only stream)
	neverAnswer                          // swallow the request
	closeWithoutAnswer                   // close the stream instead of answering
)

type stanzaRecord struct{ from, to string }

// testNet connects test servers by domain, over pipes or loopback TCP.
type testNet struct {
	t      *testing.T
	tcp    bool
	mu     sync.Mutex
	byName map[string]*testServer
	addrs  map[*testServer]string
	dead   map[string]string // domain -> address of a closed listener
	conns  []net.Conn
}

func newTestNet(t *testing.T, tcp bool) *testNet {
	n := &testNet{t: t, tcp: tcp, byName: map[string]*testServer{}, addrs: map[*testServer]string{}, dead: map[string]string{}}
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, c := range n.conns {
			c.Close()
		}
	})
	return n
}

func (n *testNet) track(c net.Conn) net.Conn {
	n.mu.Lock()
	n.conns = append(n.conns, c)
	n.mu.Unlock()
	return c
}

// unreachable registers a domain whose server cannot be connected to.
func (n *testNet) unreachable(name string) {
	if n.tcp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			n.t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		n.dead[name] = addr
		return
	}
	n.dead[name] = "pipe"
}

func (n *testNet) dial(ctx context.Context, name string) (net.Conn, error) {
	n.mu.Lock()
	srv := n.byName[name]
	addr := n.addrs[srv]
	dead, isDead := n.dead[name]
	n.mu.Unlock()
	switch {
	case isDead && n.tcp:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", dead) // refused: nothing listens there
	case srv == nil:
		return nil, fmt.Errorf("dial %s: connection refused", name)
	case n.tcp:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return n.track(c), nil
	default:
		c1, c2 := net.Pipe()
		n.track(c1)
		n.track(c2)
		go srv.serve(c2)
		return c1, nil
	}
}

type testServer struct {
	net     *testNet
	domains []string
	secret  Secret
	mode    verifyMode
	allow   func(string) error
	// timeouts gives Inbound.Timeout per originating domain (zero: the
	// default), so that one test authority can be cut short without
	// cutting short the valid requests that share its stream.
	timeouts map[string]time.Duration
	streamID func() string
	reuse    bool // verify over an existing outgoing stream when there is one

	ids       atomic.Int64
	accepted  atomic.Int64
	delivered chan stanzaRecord
	refused   chan stanzaRecord
	handled   chan error // what Inbound.Handle reported, per request

	mu   sync.Mutex
	outs map[string]*outStream // established outgoing streams by remote domain
}

func (n *testNet) server(secret string, domains ...string) *testServer {
	s := &testServer{
		net: n, domains: domains, secret: Secret(secret),
		delivered: make(chan stanzaRecord, 16), refused: make(chan stanzaRecord, 16),
		handled: make(chan error, 16), outs: map[string]*outStream{},
	}
	n.mu.Lock()
	for _, d := range domains {
		n.byName[d] = s
	}
	n.mu.Unlock()
	if n.tcp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			n.t.Fatal(err)
		}
		n.t.Cleanup(func() { ln.Close() })
		n.mu.Lock()
		n.addrs[s] = ln.Addr().String()
		n.mu.Unlock()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go s.serve(n.track(c))
			}
		}()
	}
	return s
}

func (s *testServer) isLocal(d string) bool {
	for _, l := range s.domains {
		if l == d {
			return true
		}
	}
	return false
}

// stream is one end of a test stream: a decoder for the reader goroutine and
// an encoder shared by writers.
type stream struct {
	c  net.Conn
	d  *xml.Decoder
	mu sync.Mutex
	e  *xml.Encoder
}

func newStream(c net.Conn) *stream {
	return &stream{c: c, d: xml.NewDecoder(c), e: xml.NewEncoder(c)}
}

func (st *stream) write(m xmlstream.WriterTo) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, err := m.WriteXML(st.e); err != nil {
		return err
	}
	return st.e.Flush()
}

func (st *stream) writeRaw(s string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.e.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(st.c, s)
	return err
}

func (st *stream) header(id string) error {
	idAttr := ""
	if id != "\x00" {
		idAttr = " id='" + id + "'"
	}
	return st.writeRaw("<stream:stream xmlns='jabber:server' xmlns:db='" + NS + "' xmlns:stream='" +
		streamNS + "' version='1.0'" + idAttr + ">")
}

func (st *stream) readHeader() (xml.StartElement, error) {
	for {
		tok, err := st.d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name != (xml.Name{Space: streamNS, Local: "stream"}) {
				return start, fmt.Errorf("not a stream header: %v", start.Name)
			}
			return start, nil
		}
	}
}

// each reads top-level elements and calls f with each start element; f must
// consume the element.
func (st *stream) each(f func(start xml.StartElement) error) error {
	for {
		tok, err := st.d.Token()
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if err := f(tok); err != nil {
				return err
			}
		case xml.EndElement:
			return io.EOF // </stream:stream>
		}
	}
}

func domainOf(addr string) string {
	if i := strings.IndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	return addr
}

// serve runs an incoming stream: receiving and authoritative roles.
func (s *testServer) serve(c net.Conn) {
	defer c.Close()
	s.accepted.Add(1)
	st := newStream(c)
	if _, err := st.readHeader(); err != nil {
		return
	}
	id := "S" + strconv.FormatInt(s.ids.Add(1), 10)
	if s.streamID != nil {
		id = s.streamID()
	}
	if err := st.header(id); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pairs := new(Pairs)
	in := Inbound{Keys: s.secret, IsLocal: s.isLocal, Allow: s.allow, Authority: s}
	st.each(func(start xml.StartElement) error {
		if start.Name.Space != NS {
			// A stanza: only authenticated pairs may send one.
			var from, to string
			for _, a := range start.Attr {
				switch a.Name.Local {
				case "from":
					from = domainOf(a.Value)
				case "to":
					to = domainOf(a.Value)
				}
			}
			if err := st.d.Skip(); err != nil {
				return err
			}
			if pairs.Has(from, to) {
				s.delivered <- stanzaRecord{from, to}
			} else {
				s.refused <- stanzaRecord{from, to}
			}
			return nil
		}
		el, err := Decode(st.d, start)
		if err != nil {
			return err
		}
		switch el := el.(type) {
		case Result:
			in := in
			in.Timeout = s.timeouts[el.From]
			go func() {
				ans, err := in.Handle(ctx, id, pairs, el)
				s.handled <- err
				if ans == (Result{}) {
					return
				}
				st.write(ans)
				if ans.Type == Invalid {
					// XEP-0220 §2.2.1: close the stream after 'invalid'.
					st.writeRaw("</stream:stream>")
					c.Close()
				}
			}()
		case Verify:
			switch s.mode {
			case neverAnswer:
				return nil
			case closeWithoutAnswer:
				return io.EOF
			}
			ans, _ := in.Answer(el)
			if ans == (Verify{}) {
				return nil
			}
			st.write(ans)
			if s.mode == answerThenClose {
				st.writeRaw("</stream:stream>")
				return io.EOF
			}
		}
		return nil
	})
}

type outcome struct {
	pair Pair
	err  error
}

// outStream is an outgoing stream: initiating role, and the receiving
// role's verification requests.
type outStream struct {
	st       *stream
	out      *Outbound
	id       string
	outcomes chan outcome
	done     chan struct{}
}

func (s *testServer) connect(ctx context.Context, remote string, keys KeySource, idOverride *string) (*outStream, error) {
	c, err := s.net.dial(ctx, remote)
	if err != nil {
		return nil, err
	}
	st := newStream(c)
	if err := st.header("\x00"); err != nil {
		c.Close()
		return nil, err
	}
	hdr, err := st.readHeader()
	if err != nil {
		c.Close()
		return nil, err
	}
	var id string
	for _, a := range hdr.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	keyID := id
	if idOverride != nil {
		keyID = *idOverride
	}
	o := &outStream{st: st, out: NewOutbound(keys, keyID), id: id, outcomes: make(chan outcome, 16), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		err := st.each(func(start xml.StartElement) error {
			el, err := Decode(st.d, start)
			if err != nil {
				return err
			}
			switch el := el.(type) {
			case Result:
				pair, err := o.out.Resolve(el)
				if !errors.Is(err, ErrUnsolicited) {
					o.outcomes <- outcome{pair, err}
				}
			case Verify:
				o.out.Deliver(el)
			}
			return nil
		})
		for _, p := range o.out.Close(err) {
			o.outcomes <- outcome{p, ErrClosed}
		}
		c.Close()
	}()
	return o, nil
}

// Verify makes testServer an Authority: over an existing outgoing stream to
// the sender domain if reuse is set and there is one, else over a new
// verification-only stream closed after the answer.
func (s *testServer) Verify(ctx context.Context, v Verify) (Type, error) {
	s.mu.Lock()
	o := s.outs[v.To]
	s.mu.Unlock()
	if o == nil || !s.reuse {
		var err error
		o, err = s.connect(ctx, v.To, s.secret, nil)
		if err != nil {
			return "", err
		}
		defer o.st.c.Close()
	}
	return o.out.Verify(ctx, v, func(v Verify) error { return o.st.write(v) })
}

// authenticate runs the initiating role for from→to on o and returns the
// outcome. tamper, when set, changes the key before it is sent.
func (o *outStream) authenticate(t *testing.T, from, to string, tamper func(string) string) error {
	t.Helper()
	r, err := o.out.Request(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		r.Key = tamper(r.Key)
	}
	if err := o.st.write(r); err != nil {
		t.Fatal(err)
	}
	oc := recv(t, o.outcomes)
	if want := (Pair{from, to}); oc.pair != want {
		t.Fatalf("outcome for %v, want %v", oc.pair, want)
	}
	return oc.err
}

func (o *outStream) send(t *testing.T, from, to string) {
	t.Helper()
	if err := o.st.writeRaw("<message from='u@" + from + "' to='v@" + to + "' type='chat'><body>hi</body></message>"); err != nil {
		t.Fatal(err)
	}
}

// recv waits for a value; the watchdog only turns a hang into a failure.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatal("nothing arrived")
		panic("unreachable")
	}
}

func wantCondition(t *testing.T, err error, c stanza.Condition) {
	t.Helper()
	var se stanza.Error
	if !errors.As(err, &se) || se.Condition != c {
		t.Fatalf("outcome = %v, want dialback error %s", err, c)
	}
}

func forBoth(t *testing.T, f func(t *testing.T, n *testNet)) {
	for _, tcp := range []bool{false, true} {
		name := "pipe"
		if tcp {
			name = "tcp"
		}
		t.Run(name, func(t *testing.T) { f(t, newTestNet(t, tcp)) })
	}
}

func TestRolesValid(t *testing.T) {
	for i, tc := range []struct {
		mode     verifyMode
		streamID func() string
	}{
		{mode: answerVerify},
		{mode: answerThenClose}, // verification-only stream closed after the answer
		{mode: answerVerify, streamID: func() string { return "" }}, // id='' from the receiving server
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			forBoth(t, func(t *testing.T, n *testNet) {
				a := n.server("secret-of-a", "a.example")
				a.mode = tc.mode
				z := n.server("secret-of-z", "z.example")
				z.streamID = tc.streamID
				o, err := a.connect(context.Background(), "z.example", a.secret, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := o.authenticate(t, "a.example", "z.example", nil); err != nil {
					t.Fatalf("outcome: %v", err)
				}
				if err := recv(t, z.handled); err != nil {
					t.Fatalf("receiving side: %v", err)
				}
				o.send(t, "a.example", "z.example")
				if got := recv(t, z.delivered); got != (stanzaRecord{"a.example", "z.example"}) {
					t.Fatalf("delivered %v", got)
				}
			})
		})
	}
}

func TestRolesRefused(t *testing.T) {
	flip := func(k string) string { return strings.Repeat("0", len(k)) }
	wrongID := "not-the-stream-id"
	for i, tc := range []struct {
		name    string
		from    string
		to      string
		setup   func(n *testNet, a, z *testServer)
		tamper  func(string) string
		idOver  *string
		invalid bool             // expect type='invalid' and a closed stream
		cond    stanza.Condition // else expect this dialback error, stream kept
	}{
		{name: "wrong key", from: "a.example", to: "z.example", tamper: flip, invalid: true},
		{name: "wrong stream id", from: "a.example", to: "z.example", idOver: &wrongID, invalid: true},
		{name: "unknown to", from: "a.example", to: "nowhere.example", cond: stanza.ItemNotFound},
		{name: "denied from", from: "denied.example", to: "z.example", cond: stanza.PolicyViolation,
			setup: func(n *testNet, a, z *testServer) {
				n.server("secret-of-denied", "denied.example")
				z.allow = func(d string) error {
					if d == "denied.example" {
						return errors.New("host_policy denies denied.example")
					}
					return nil
				}
			}},
		{name: "authority unreachable", from: "gone.example", to: "z.example", cond: RemoteConnectionFailed,
			setup: func(n *testNet, a, z *testServer) { n.unreachable("gone.example") }},
		{name: "authority times out", from: "silent.example", to: "z.example", cond: stanza.RemoteServerTimeout,
			setup: func(n *testNet, a, z *testServer) {
				n.server("secret-of-silent", "silent.example").mode = neverAnswer
				z.timeouts = map[string]time.Duration{"silent.example": 10 * time.Millisecond}
			}},
		{name: "authority closes", from: "closing.example", to: "z.example", cond: stanza.RemoteServerTimeout,
			setup: func(n *testNet, a, z *testServer) {
				n.server("secret-of-closing", "closing.example").mode = closeWithoutAnswer
			}},
	} {
		t.Run(strconv.Itoa(i)+"-"+strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			forBoth(t, func(t *testing.T, n *testNet) {
				a := n.server("secret-of-a", "a.example")
				z := n.server("secret-of-z", "z.example")
				if tc.setup != nil {
					tc.setup(n, a, z)
				}
				o, err := a.connect(context.Background(), "z.example", a.secret, tc.idOver)
				if err != nil {
					t.Fatal(err)
				}
				err = o.authenticate(t, tc.from, tc.to, tc.tamper)
				if tc.invalid {
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("outcome = %v, want ErrInvalid", err)
					}
					if err := recv(t, z.handled); !errors.Is(err, ErrInvalid) {
						t.Fatalf("receiving side: %v", err)
					}
					<-o.done // the receiving server closed the stream
					return
				}
				wantCondition(t, err, tc.cond)
				if err := recv(t, z.handled); !errors.Is(err, stanza.Error{Condition: tc.cond}) {
					t.Fatalf("receiving side: %v", err)
				}
				// The pair's stanzas are refused, and the stream is still up:
				// a valid pair can still be authenticated on it.
				o.send(t, tc.from, tc.to)
				if got := recv(t, z.refused); got != (stanzaRecord{tc.from, tc.to}) {
					t.Fatalf("refused %v", got)
				}
				if err := o.authenticate(t, "a.example", "z.example", nil); err != nil {
					t.Fatalf("valid pair after refusal: %v", err)
				}
				recv(t, z.handled)
			})
		})
	}
}

// Two pairs on one stream: one valid, one whose authoritative server refuses
// the key. The invalid pair's stanzas are refused while the valid pair's
// flow, and the stream stays up.
func TestRolesMultiplexed(t *testing.T) {
	forBoth(t, func(t *testing.T, n *testNet) {
		a := n.server("secret-of-a", "a.example")
		n.server("secret-of-c", "c.example") // a does not know c's secret
		z := n.server("secret-of-z", "z.example", "chat.z.example")
		o, err := a.connect(context.Background(), "z.example", a.secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.authenticate(t, "a.example", "z.example", nil); err != nil {
			t.Fatalf("valid pair: %v", err)
		}
		recv(t, z.handled)
		// a claims c.example: c's server refuses the key a made.
		err = o.authenticate(t, "c.example", "z.example", nil)
		wantCondition(t, err, stanza.Forbidden)
		if err := recv(t, z.handled); !errors.Is(err, ErrInvalid) {
			t.Fatalf("receiving side: %v", err)
		}
		// A second target domain on the same stream.
		if err := o.authenticate(t, "a.example", "chat.z.example", nil); err != nil {
			t.Fatalf("second target: %v", err)
		}
		recv(t, z.handled)
		for _, s := range []stanzaRecord{
			{"c.example", "z.example"}, {"a.example", "z.example"},
			{"a.example", "chat.z.example"}, {"c.example", "chat.z.example"},
		} {
			o.send(t, s.from, s.to)
			ok := s.from == "a.example"
			ch := z.refused
			if ok {
				ch = z.delivered
			}
			if got := recv(t, ch); got != s {
				t.Fatalf("got %v, want %v (delivered %v)", got, s, ok)
			}
		}
	})
}

// The receiving server sends its <db:verify/> over the stream it already
// has to the authoritative server, which carries stanzas too: no new
// connection is made, and the answer arrives on that stream.
func TestRolesVerifyOverExistingStream(t *testing.T) {
	forBoth(t, func(t *testing.T, n *testNet) {
		a := n.server("secret-of-a", "a.example")
		z := n.server("secret-of-z", "z.example")
		z.reuse = true
		// z authenticates to a first; that stream stays open.
		zo, err := z.connect(context.Background(), "a.example", z.secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := zo.authenticate(t, "z.example", "a.example", nil); err != nil {
			t.Fatal(err)
		}
		recv(t, a.handled)
		z.mu.Lock()
		z.outs["a.example"] = zo
		z.mu.Unlock()
		if got := a.accepted.Load(); got != 1 { // a verified z over a stream to z
			t.Fatalf("a accepted %d streams before the test", got)
		}
		ao, err := a.connect(context.Background(), "z.example", a.secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ao.authenticate(t, "a.example", "z.example", nil); err != nil {
			t.Fatal(err)
		}
		recv(t, z.handled)
		if got := a.accepted.Load(); got != 1 {
			t.Fatalf("a accepted %d streams, want no new one for the verification", got)
		}
		zo.send(t, "z.example", "a.example")
		recv(t, a.delivered)
		ao.send(t, "a.example", "z.example")
		recv(t, z.delivered)
	})
}
