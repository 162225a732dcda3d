package s2s

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/saslext"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// withExternal states what a test relies on: SASL EXTERNAL is on (the
// default).
var withExternal = withConfig(func(c *Config) { c.DisableSASLExternal = false })

// TestExternalSuccess links two Managers with SASL EXTERNAL both ways, over
// STARTTLS in each TLS mode and over direct TLS.
func TestExternalSuccess(t *testing.T) {
	for i, tc := range []struct {
		mode   string
		direct bool
	}{
		{mode: "optional"},
		{mode: "required"},
		{mode: "required_trusted"},
		{mode: "required_trusted", direct: true},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.mode, func(t *testing.T) {
			aOpts := []nodeOpt{withMode(tc.mode), withExternal}
			bOpts := []nodeOpt{withMode(tc.mode), withExternal}
			var a, b *node
			if tc.direct {
				a, b, _, _ = directNodes(t, aOpts, bOpts, func(_, d uint16) []srvRecord {
					return []srvRecord{{direct: true, priority: 1, port: d}}
				})
			} else {
				a, b = pairNodes(t, aOpts, bOpts)
			}
			a.send(msgAB)
			if got := b.nextDelivered(); got.ID != "m1" {
				t.Fatalf("delivered %+v", got)
			}
			b.send(msgBA)
			if got := a.nextDelivered(); got.ID != "m2" {
				t.Fatalf("delivered %+v", got)
			}
			for _, n := range []*node{a, b} {
				links := n.m.Links()
				if len(links) != 2 {
					t.Fatalf("links %+v", links)
				}
				for _, l := range links {
					if l.Auth != AuthSASLExternal || l.TLSVersion == 0 {
						t.Errorf("link %+v", l)
					}
				}
			}
		})
	}
}

// TestExternalNotOffered: a certificate that does not prove the stream's
// 'from' (wrong name, another CA, expired) gets no EXTERNAL offer, and the
// link uses dialback on the same stream.
func TestExternalNotOffered(t *testing.T) {
	leaf := func(o testcert.Options, self bool) nodeOpt {
		return withConfig(func(c *Config) {
			f := testCA().Leaf
			if self {
				f = testcert.SelfSigned
			}
			l, err := f(o)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificate = starttls.StaticCert(l.TLS)
		})
	}
	for i, cert := range []nodeOpt{
		leaf(testcert.Options{DNSNames: []string{"other.test"}}, false),
		leaf(testcert.Options{DNSNames: []string{"a.test"}}, true),
		leaf(testcert.Options{DNSNames: []string{"a.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, false),
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var offered atomic.Bool
			a, b := pairNodes(t, []nodeOpt{withMode("optional"), withExternal, cert},
				[]nodeOpt{withMode("optional"), withExternal, withConfig(func(c *Config) {
					c.Observer = func(e Event) {
						if e.Kind == AuthFailed && e.Link.Auth == AuthSASLExternal {
							offered.Store(true)
						}
					}
				})})
			a.send(msgAB)
			if got := b.nextDelivered(); got.ID != "m1" {
				t.Fatalf("delivered %+v", got)
			}
			if offered.Load() {
				t.Fatal("EXTERNAL was tried and refused: it should not have been offered")
			}
			for _, l := range append(a.m.Links(), b.m.Links()...) {
				if l.Direction == Outgoing && l.Local == "a.test" || l.Direction == Incoming && l.Local == "b.test" {
					if l.Auth != AuthDialback {
						t.Errorf("link %+v", l)
					}
				}
			}
		})
	}
}

// TestExternalPolicyDeny: a receiving server whose policy denies the peer
// refuses EXTERNAL although the certificate is good (MongooseIM skips this
// check); the initiating server falls back to dialback, which policy refuses
// too, and bounces.
func TestExternalPolicyDeny(t *testing.T) {
	a, b := pairNodes(t, []nodeOpt{withMode("required_trusted"), withExternal},
		[]nodeOpt{withMode("required_trusted"), withExternal, withS2S(func(s *config.S2S) {
			s.HostPolicy = append(s.HostPolicy, config.HostPolicy{Host: "a.test", Policy: "deny"})
		})})
	a.send(msgAB)
	bo := a.nextBounce()
	if bo.Condition != stanza.RemoteServerNotFound || !errors.Is(bo.Err, ErrAuth) {
		t.Fatalf("bounce %s: %s (%v)", bo.Condition, bo.Text, bo.Err)
	}
	var sasl, db bool
	for !sasl || !db {
		select {
		case e := <-b.events:
			if e.Kind == AuthFailed && e.Link.Remote == "a.test" {
				sasl = sasl || e.Link.Auth == AuthSASLExternal && errors.Is(e.Err, ErrDenied)
				db = db || e.Link.Auth == AuthDialback
			}
		case <-time.After(wait):
			t.Fatalf("refusals seen: EXTERNAL %v, dialback %v", sasl, db)
		}
	}
	if len(b.delivered) != 0 || len(b.m.Links()) != 0 {
		t.Fatalf("b delivered %d, links %+v", len(b.delivered), b.m.Links())
	}
}

// fakeReceiver is a receiving server written by hand: STARTTLS required,
// then the SASL behaviour under test; it accepts any dialback key.
type fakeReceiver struct {
	t        *testing.T
	ln       net.Listener
	tls      *tls.Config
	dialback bool   // declare xmlns:db and offer the dialback feature
	mechs    []byte // the <mechanisms/> feature after TLS; nil for none
	onAuth   string // "failure", "success" or "challenge"

	conns atomic.Int32
	auths atomic.Int32
	got   chan wire.Element
}

func newFakeReceiver(t *testing.T, dialbackOffered bool, mechs []byte, onAuth string) *fakeReceiver {
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"b.test"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeReceiver{t: t, ln: listen(t), dialback: dialbackOffered, mechs: mechs, onAuth: onAuth,
		tls: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, ClientAuth: tls.RequestClientCert},
		got: make(chan wire.Element, 10)}
	t.Cleanup(func() { f.ln.Close() })
	go func() {
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeReceiver) header() string {
	db := ""
	if f.dialback {
		db = ` xmlns:db='jabber:server:dialback'`
	}
	return `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'` +
		db + ` from='b.test' to='a.test' id='fake` + strconv.Itoa(int(f.conns.Load())) + `' version='1.0'>`
}

func (f *fakeReceiver) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	r := wire.NewReader(c, wire.DefaultLimits)
	if _, err := r.ReadHeader(); err != nil {
		return
	}
	io.WriteString(c, f.header())
	wire.WriteFeatures(c, []byte(`<starttls xmlns='`+starttls.NS+`'><required/></starttls>`))
	if _, err := r.Next(); err != nil {
		return
	}
	io.WriteString(c, starttls.Proceed)
	tc := tls.Server(c, f.tls)
	if tc.Handshake() != nil {
		return
	}
	saslDone := false
	for {
		r := wire.NewReader(tc, wire.DefaultLimits)
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		io.WriteString(tc, f.header())
		var feats [][]byte
		if f.mechs != nil && !saslDone {
			feats = append(feats, f.mechs)
		}
		if f.dialback {
			feats = append(feats, encode(dialback.Feature{}))
		}
		wire.WriteFeatures(tc, feats...)
		if !f.stream(tc, r, &saslDone) {
			return
		}
	}
}

// stream reads one stream; true means the peer restarts it.
func (f *fakeReceiver) stream(tc *tls.Conn, r *wire.Reader, saslDone *bool) bool {
	for {
		e, err := r.Next()
		if err != nil {
			return false
		}
		switch e.Name.Local {
		case "auth":
			f.auths.Add(1)
			switch f.onAuth {
			case "failure":
				tc.Write(saslext.Failure(saslext.NotAuthorized, "not today"))
			case "challenge":
				tc.Write(saslext.Challenge(nil))
			default:
				io.WriteString(tc, saslext.Success)
				*saslDone = true
				return true
			}
		case "response":
			io.WriteString(tc, saslext.Success)
			*saslDone = true
			return true
		case "result":
			fmt.Fprintf(tc, "<db:result from='%s' to='%s' type='valid'/>", e.To, e.From)
		default:
			f.got <- e
		}
	}
}

func (f *fakeReceiver) nextGot() wire.Element {
	f.t.Helper()
	select {
	case e := <-f.got:
		return e
	case <-time.After(wait):
		f.t.Fatal("the fake received nothing")
	}
	return wire.Element{}
}

// TestExternalFallback drives the initiating side against a receiver that
// refuses EXTERNAL, challenges, or offers no mechanism.
func TestExternalFallback(t *testing.T) {
	external := saslext.Feature(saslext.Name)
	for i, tc := range []struct {
		dialback  bool
		mechs     []byte
		onAuth    string
		wantAuth  Auth // 0 for a bounce
		wantConns int32
		wantAuths int32
	}{
		// Refused, dialback offered: a new stream with dialback.
		{dialback: true, mechs: external, onAuth: "failure", wantAuth: AuthDialback, wantConns: 2, wantAuths: 1},
		// Refused, no dialback: nothing else to try.
		{dialback: false, mechs: external, onAuth: "failure", wantConns: 1, wantAuths: 1},
		// ejabberd's empty <mechanisms/> means no SASL.
		{dialback: true, mechs: saslext.Feature(), wantAuth: AuthDialback, wantConns: 1},
		// Only other mechanisms: dialback.
		{dialback: true, mechs: saslext.Feature("SCRAM-SHA-1"), wantAuth: AuthDialback, wantConns: 1},
		// A server that wants the authzid in a response.
		{dialback: false, mechs: external, onAuth: "challenge", wantAuth: AuthSASLExternal, wantConns: 1, wantAuths: 1},
		{dialback: true, mechs: external, onAuth: "success", wantAuth: AuthSASLExternal, wantConns: 1, wantAuths: 1},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			f := newFakeReceiver(t, tc.dialback, tc.mechs, tc.onAuth)
			a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"b.test": addrOf(f.ln)},
				withMode("required_trusted"), withExternal)
			a.send(msgAB)
			if tc.wantAuth == 0 {
				bo := a.nextBounce()
				if bo.Condition != stanza.RemoteServerNotFound || !errors.Is(bo.Err, ErrExternalRefused) || !errors.Is(bo.Err, ErrAuth) {
					t.Fatalf("bounce %s: %s (%v)", bo.Condition, bo.Text, bo.Err)
				}
			} else {
				if e := f.nextGot(); e.ID != "m1" {
					t.Fatalf("got %+v", e)
				}
				if l := a.m.Links(); len(l) != 1 || l[0].Auth != tc.wantAuth {
					t.Fatalf("links %+v", l)
				}
			}
			if c, n := f.conns.Load(), f.auths.Load(); c != tc.wantConns || n != tc.wantAuths {
				t.Fatalf("%d connections, %d <auth/>; want %d, %d", c, n, tc.wantConns, tc.wantAuths)
			}
		})
	}
}

// TestExternalIncomingRaw drives our receiving side by hand over direct TLS:
// the authzid rules, the challenge path, mechanisms not offered, and the
// restarted stream.
func TestExternalIncomingRaw(t *testing.T) {
	b64 := func(s string) string { return string(saslext.Auth(saslext.Name, []byte(s), true)) }
	for i, tc := range []struct {
		cert     string // the name a.test's certificate gives
		auth     string
		response string // sent after a challenge
		restart  string // the 'from' of the restarted stream
		want     string // "success", or the failure condition
	}{
		{cert: "a.test", auth: b64(""), restart: "a.test", want: "success"},
		{cert: "a.test", auth: b64("A.Test"), restart: "a.test", want: "success"},
		{cert: "a.test", auth: string(saslext.Auth(saslext.Name, nil, false)), response: string(saslext.Response(nil)), restart: "a.test", want: "success"},
		{cert: "a.test", auth: b64("evil.test"), want: saslext.InvalidAuthzid},
		{cert: "a.test", auth: string(saslext.Auth("PLAIN", []byte("x"), true)), want: saslext.InvalidMechanism},
		{cert: "a.test", auth: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>!!</auth>`, want: saslext.MalformedRequest},
		// Not offered to a certificate that does not name the stream's
		// 'from'.
		{cert: "other.test", auth: b64(""), want: saslext.InvalidMechanism},
		// After success, the restarted stream must come from the same
		// domain.
		{cert: "a.test", auth: b64(""), restart: "x.test", want: "invalid-from"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			lb, ld := listen(t), listen(t)
			b := newNode(t, lb, []string{"b.test"}, nil, withMode("optional"), withExternal)
			go b.m.ServeTLS(ld)
			leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{tc.cert}})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := tls.Dial("tcp", ld.Addr().String(), &tls.Config{
				ServerName: "b.test", RootCAs: testCA().Pool(), Certificates: []tls.Certificate{leaf.TLS},
				NextProtos: []string{starttls.ALPN},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wait))
			if p := conn.ConnectionState().NegotiatedProtocol; p != starttls.ALPN {
				t.Fatalf("ALPN %q", p)
			}
			p := &rawPeer{t: t, conn: conn}
			open := func(from string) []wire.Feature {
				p.r = wire.NewReader(conn, wire.DefaultLimits)
				p.write(headerString(from, "b.test"))
				if _, err := p.r.ReadHeader(); err != nil {
					t.Fatalf("header: %v", err)
				}
				e, err := p.r.Next()
				if err != nil {
					t.Fatalf("features: %v", err)
				}
				feats, err := wire.ParseFeatures(e)
				if err != nil {
					t.Fatal(err)
				}
				return feats
			}
			feats := open("a.test")
			if got, want := offersExternal(feats), tc.cert == "a.test"; got != want {
				t.Fatalf("EXTERNAL offered %v, want %v: %+v", got, want, feats)
			}
			p.write(tc.auth)
			e, err := p.r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if tc.response != "" {
				if e.Name.Local != "challenge" {
					t.Fatalf("got <%s/>, want a challenge", e.Name.Local)
				}
				p.write(tc.response)
				if e, err = p.r.Next(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.restart == "" {
				tr := e.TokenReader()
				tok, _ := tr.Token()
				cond, _, err := saslext.ParseFailure(tr, tok.(xml.StartElement))
				if err != nil || cond != tc.want {
					t.Fatalf("failure %q (%v), want %q", cond, err, tc.want)
				}
				if len(b.m.Links()) != 0 {
					t.Fatalf("links %+v", b.m.Links())
				}
				return
			}
			if e.Name.Local != "success" {
				t.Fatalf("got <%s/>, want success", e.Name.Local)
			}
			if tc.restart != "a.test" {
				p.r = wire.NewReader(conn, wire.DefaultLimits)
				p.write(headerString(tc.restart, "b.test"))
				p.r.ReadHeader()
				if cond := p.streamError(); cond != tc.want {
					t.Fatalf("stream error %q, want %q", cond, tc.want)
				}
				return
			}
			if feats := open("a.test"); offersExternal(feats) {
				t.Fatal("EXTERNAL offered again after success")
			}
			p.write(`<message from='x@a.test' to='y@b.test' id='raw'/>`)
			if got := b.nextDelivered(); got.ID != "raw" {
				t.Fatalf("delivered %+v", got)
			}
			if l := b.m.Links(); len(l) != 1 || l[0].Auth != AuthSASLExternal || l[0].Remote != "a.test" {
				t.Fatalf("links %+v", l)
			}
			// Only the authenticated pair may send.
			p.write(`<message from='x@c.test' to='y@b.test'/>`)
			if cond := p.streamError(); cond != "invalid-from" {
				t.Fatalf("stream error %q", cond)
			}
		})
	}
}

// TestLinkInfoAgrees: every event about a link and Links() describe it the
// same way, the authentication method included (StanzaIn events once said
// dialback on EXTERNAL links).
func TestLinkInfoAgrees(t *testing.T) {
	for i, external := range []bool{false, true} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			opts := []nodeOpt{withMode("required_trusted"), withConfig(func(c *Config) { c.DisableSASLExternal = !external })}
			a, b := pairNodes(t, opts, opts)
			want := AuthDialback
			if external {
				want = AuthSASLExternal
			}
			a.send(msgAB)
			b.nextDelivered()
			up := waitEvent(t, b, LinkUp).Link
			in := waitEvent(t, b, StanzaIn).Link
			out := waitEvent(t, a, StanzaOut).Link
			for _, l := range []LinkInfo{up, in, out} {
				if l.Auth != want || l.TLSVersion == 0 || l.Local == "" || l.Remote == "" || l.Since.IsZero() {
					t.Errorf("event link %+v, want auth %s over TLS", l, want)
				}
			}
			if in.StanzasIn != 1 || out.StanzasOut != 1 {
				t.Errorf("counts in event: in %d, out %d", in.StanzasIn, out.StanzasOut)
			}
			links := b.m.Links()
			if len(links) != 1 {
				t.Fatalf("b links %+v", links)
			}
			l := links[0]
			if l.Auth != in.Auth || l.TLSVersion != in.TLSVersion || l.CipherSuite != in.CipherSuite || !l.Since.Equal(in.Since) {
				t.Errorf("Links() %+v, StanzaIn event %+v", l, in)
			}
		})
	}
}

// TestExternalAfterStartTLSRestart: under required_trusted the STARTTLS
// handshake checks the certificate against the header's 'from', and
// listing EXTERNAL after TLS does not check it again (starttls.go,
// verifyPeer); a stream restarted after TLS from another domain must still
// be checked, and get no EXTERNAL when the certificate does not name it.
func TestExternalAfterStartTLSRestart(t *testing.T) {
	for i, tc := range []struct {
		before, after string // the header's 'from' before and after TLS
		offered       bool
	}{
		{before: "a.test", after: "a.test", offered: true},
		{before: "a.test", after: "evil.test", offered: false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ln := listen(t)
			newNode(t, ln, []string{"b.test"}, nil, withMode("required_trusted"), withExternal)
			leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"a.test"}})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wait))
			p := &rawPeer{t: t, conn: conn}
			open := func(from string) []wire.Feature {
				p.r = wire.NewReader(p.conn, wire.DefaultLimits)
				p.write(headerString(from, "b.test"))
				if _, err := p.r.ReadHeader(); err != nil {
					t.Fatalf("header: %v", err)
				}
				e, err := p.r.Next()
				if err != nil {
					t.Fatalf("features: %v", err)
				}
				feats, err := wire.ParseFeatures(e)
				if err != nil {
					t.Fatal(err)
				}
				return feats
			}
			open(tc.before)
			p.write(starttls.StartTLS)
			if e, err := p.r.Next(); err != nil || e.Name.Local != "proceed" {
				t.Fatalf("answer to <starttls/>: %+v, %v", e.Name, err)
			}
			tc2 := tls.Client(conn, &tls.Config{ServerName: "b.test", RootCAs: testCA().Pool(), Certificates: []tls.Certificate{leaf.TLS}})
			if err := tc2.Handshake(); err != nil {
				t.Fatal(err)
			}
			p.conn = tc2
			if got := offersExternal(open(tc.after)); got != tc.offered {
				t.Fatalf("EXTERNAL offered %v after TLS with 'from' %s, want %v", got, tc.after, tc.offered)
			}
		})
	}
}

// TestExternalAfterDirectTLSRestart is TestExternalAfterStartTLSRestart for
// direct TLS under required_trusted: the handshake checks the chain only,
// and the names checked after it (the header's 'from', EXTERNAL's listing,
// the restarted stream, a dialback claim) check the name without the chain
// again (directtls.go, verifyPeer). Each must still be checked: a 'from'
// the certificate does not name, a restart from another domain and a
// dialback claim for another domain are refused, however the name before
// them was proven. Each case runs twice: after a full handshake, and after
// one that resumed a session of the same certificate (the name-only checks
// then rest on the chain check that VerifyConnection made on the session's
// certificate, at the resumption).
func TestExternalAfterDirectTLSRestart(t *testing.T) {
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		t.Run(name, func(t *testing.T) { testExternalAfterDirectTLSRestart(t, resume) })
	}
}

func testExternalAfterDirectTLSRestart(t *testing.T, resume bool) {
	for i, tc := range []struct {
		from    string // the first header's 'from'
		restart string // after SASL EXTERNAL, the restarted stream's 'from'
		claim   string // instead, a dialback request from this domain
		want    string // the stream error, or the dialback error condition; "" for success
	}{
		{from: "a.test", restart: "a.test"},
		{from: "evil.test", want: "not-authorized"},
		{from: "a.test", restart: "evil.test", want: "invalid-from"},
		{from: "a.test", claim: "evil.test", want: "not-authorized"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			lb, ld := listen(t), listen(t)
			b := newNode(t, lb, []string{"b.test"}, nil, withMode("required_trusted"), withExternal)
			go b.m.ServeTLS(ld)
			leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"a.test"}})
			if err != nil {
				t.Fatal(err)
			}
			ccfg := &tls.Config{
				ServerName: "b.test", RootCAs: testCA().Pool(), Certificates: []tls.Certificate{leaf.TLS},
				NextProtos: []string{starttls.ALPN},
			}
			if resume {
				// A first stream, authenticated, whose session ticket the
				// client reads with the features.
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				first, err := tls.Dial("tcp", ld.Addr().String(), ccfg)
				if err != nil {
					t.Fatal(err)
				}
				first.SetDeadline(time.Now().Add(wait))
				fp := &rawPeer{t: t, conn: first, r: wire.NewReader(first, wire.DefaultLimits)}
				fp.write(headerString("a.test", "b.test"))
				if _, err := fp.r.ReadHeader(); err != nil {
					t.Fatalf("first stream's header: %v", err)
				}
				if _, err := fp.r.Next(); err != nil {
					t.Fatalf("first stream's features: %v", err)
				}
				first.Close()
			}
			conn, err := tls.Dial("tcp", ld.Addr().String(), ccfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if conn.ConnectionState().DidResume != resume {
				t.Fatalf("resumed %v, want %v", conn.ConnectionState().DidResume, resume)
			}
			conn.SetDeadline(time.Now().Add(wait))
			p := &rawPeer{t: t, conn: conn}
			// open sends a header and returns the features, or the stream
			// error's condition.
			open := func(from string) ([]wire.Feature, string) {
				p.r = wire.NewReader(conn, wire.DefaultLimits)
				p.write(headerString(from, "b.test"))
				if _, err := p.r.ReadHeader(); err != nil {
					t.Fatalf("header: %v", err)
				}
				e, err := p.r.Next()
				if pe := (*wire.PeerError)(nil); errors.As(err, &pe) {
					return nil, pe.Err.Err
				} else if err != nil {
					t.Fatalf("features: %v", err)
				}
				feats, err := wire.ParseFeatures(e)
				if err != nil {
					t.Fatal(err)
				}
				return feats, ""
			}
			feats, cond := open(tc.from)
			if tc.from != "a.test" {
				if cond != tc.want {
					t.Fatalf("stream error %q (features %+v), want %q", cond, feats, tc.want)
				}
				return
			}
			if !offersExternal(feats) {
				t.Fatalf("EXTERNAL not offered: %+v", feats)
			}
			if tc.claim != "" {
				p.write(dbResult(tc.claim, "b.test", "k"))
				r := p.nextAnswer()
				if r.Type != dialback.Failed || r.Err == nil || r.Err.Condition != stanza.Condition(tc.want) {
					t.Fatalf("answer %+v, want an error %s", r, tc.want)
				}
				return
			}
			p.write(string(saslext.Auth(saslext.Name, nil, true)))
			if e, err := p.r.Next(); err != nil || e.Name.Local != "success" {
				t.Fatalf("answer to <auth/>: %+v, %v", e.Name, err)
			}
			feats, cond = open(tc.restart)
			if cond != tc.want {
				t.Fatalf("stream error %q after the restart, want %q", cond, tc.want)
			}
			if tc.want != "" {
				return
			}
			if offersExternal(feats) {
				t.Fatalf("features after success %+v", feats)
			}
			p.write(`<message from='x@a.test' to='y@b.test' id='raw'/>`)
			if got := b.nextDelivered(); got.ID != "raw" {
				t.Fatalf("delivered %+v", got)
			}
		})
	}
}
