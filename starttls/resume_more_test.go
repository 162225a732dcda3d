package starttls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// hs is what one handshake over loopback TCP gave each side.
type hs struct {
	client, server       tls.ConnectionState
	clientErr, serverErr error
}

func (h hs) resumed() bool { return h.client.DidResume && h.server.DidResume }

// handshake runs one TLS handshake on a fresh loopback connection; the
// server then writes a byte, which the client reads, so that it has read
// the session ticket too (and learnt of a refusal of its certificate,
// which in TLS 1.3 the server makes after the client's handshake ended).
func handshake(t *testing.T, ccfg, scfg *tls.Config) hs {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var h hs
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := tls.Server(c2, scfg)
		if h.serverErr = sc.Handshake(); h.serverErr != nil {
			c2.Close()
			return
		}
		h.server = sc.ConnectionState()
		_, h.serverErr = sc.Write([]byte{'x'})
	}()
	cc := tls.Client(c1, ccfg)
	if h.clientErr = cc.Handshake(); h.clientErr == nil {
		h.client = cc.ConnectionState()
		_, h.clientErr = io.ReadFull(cc, make([]byte, 1))
		h.client = cc.ConnectionState()
	}
	c1.Close()
	<-done
	return h
}

// link makes the client and server configurations of one stream from
// local (ours) to remote, and runs its handshake; peer is the 'from' the
// server got in the stream header ("" for none).
func link(t *testing.T, out, in *Config, remote, peer string) hs {
	t.Helper()
	ccfg, err := out.ClientConfig(remote)
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := in.ServerConfig(peer)
	if err != nil {
		t.Fatal(err)
	}
	return handshake(t, ccfg, scfg)
}

// fakeClock is a Config.Time that tests move.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// switchCert is a CertSource whose certificate the test changes, as a
// renewed certfile or a host's own source would.
type switchCert struct {
	mu   sync.Mutex
	cert *tls.Certificate
}

func (s *switchCert) set(l *testcert.Leaf) {
	s.mu.Lock()
	c := l.TLS
	s.cert = &c
	s.mu.Unlock()
}

func (s *switchCert) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, nil
}

func leafNames(cs tls.ConnectionState) []string { return names(cs.PeerCertificates) }

// TestResumption: under required_trusted, a second link resumes on both
// sides, on a stream whose tls.Config is a new one (the ticket keys are the
// Config's), and each side still checks the other's certificate from the
// session: the server refuses a resumed session whose certificate does not
// name the stream's 'from'.
func TestResumption(t *testing.T) {
	f := newFixture(t)
	out, in := f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b)

	h := link(t, out, in, domainB, domainA)
	if h.clientErr != nil || h.serverErr != nil {
		t.Fatalf("first link: client %v, server %v", h.clientErr, h.serverErr)
	}
	if h.client.DidResume || h.server.DidResume {
		t.Fatal("the first link resumed")
	}
	for i := range 2 {
		h = link(t, out, in, domainB, domainA)
		if h.clientErr != nil || h.serverErr != nil || !h.resumed() {
			t.Fatalf("link %d: client %v, server %v, resumed %v/%v", i+2, h.clientErr, h.serverErr, h.client.DidResume, h.server.DidResume)
		}
		if n := leafNames(h.server); len(n) != 1 || n[0] != domainA {
			t.Fatalf("resumed: the server sees %v, want %s's certificate", n, domainA)
		}
		if n := leafNames(h.client); len(n) != 1 || n[0] != domainB {
			t.Fatalf("resumed: the client sees %v, want %s's certificate", n, domainB)
		}
	}

	// The session carries a.example.net's certificate: a stream that
	// claims another 'from' is refused by the server's check, which runs
	// on the resumed session.
	h = link(t, out, in, domainB, "c.example.net")
	if !h.client.DidResume || !errors.Is(h.serverErr, ErrNameMismatch) {
		t.Fatalf("resumed with 'from' c.example.net: client resumed %v, server %v; want ErrNameMismatch", h.client.DidResume, h.serverErr)
	}
	// And the client's check runs too: a server Config whose own
	// certificate does not name the domain dialled is refused, resumed
	// or not.
	wrong := f.leaf(t, f.ca, testcert.Options{DNSNames: []string{"c.example.net"}})
	sw := &switchCert{}
	sw.set(f.b)
	in2 := &Config{Mode: RequiredTrusted, Roots: f.ca.Pool(), Cert: sw}
	if h = link(t, out, in2, domainB, domainA); h.clientErr != nil || h.serverErr != nil {
		t.Fatalf("first link to in2: %v %v", h.clientErr, h.serverErr)
	}
	sw.set(wrong)
	h = link(t, out, in2, domainB, domainA)
	if h.client.DidResume || !errors.Is(h.clientErr, ErrNameMismatch) {
		t.Fatalf("server now presenting c.example.net: client resumed %v, error %v; want a full handshake refused with ErrNameMismatch", h.client.DidResume, h.clientErr)
	}
}

// TestResumptionKeyedByCertificate: one Config serves several local
// domains (one Manager); a session made with one certificate is resumed
// only by a link that would present that same certificate, so that SASL
// EXTERNAL on the server (which reads the name from the session's
// certificate) authenticates exactly what a full handshake would.
func TestResumptionKeyedByCertificate(t *testing.T) {
	f := newFixture(t)
	certA := f.a
	certC := f.leaf(t, f.ca, testcert.Options{DNSNames: []string{"c.example.net"}})
	both := f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainA, "c.example.net"}})
	src := &switchCert{}
	out := &Config{Mode: RequiredTrusted, Roots: f.ca.Pool(), Cert: src}
	in := f.config(RequiredTrusted, f.b)

	for i, step := range []struct {
		cert    *testcert.Leaf
		from    string
		resumed bool
	}{
		{certA, domainA, false},
		{certA, domainA, true},
		// Local domain c.example.net, its own certificate: a full
		// handshake, and the server sees c's certificate.
		{certC, "c.example.net", false},
		{certC, "c.example.net", true},
		// a's certificate again: its session is still there.
		{certA, domainA, true},
		// One certificate naming both: the session made for a serves c,
		// whose name the certificate carries.
		{both, domainA, false},
		{both, "c.example.net", true},
	} {
		src.set(step.cert)
		h := link(t, out, in, domainB, step.from)
		if h.clientErr != nil || h.serverErr != nil {
			t.Fatalf("step %d: client %v, server %v", i, h.clientErr, h.serverErr)
		}
		if h.client.DidResume != step.resumed || h.server.DidResume != step.resumed {
			t.Fatalf("step %d: resumed %v/%v, want %v", i, h.client.DidResume, h.server.DidResume, step.resumed)
		}
		if len(h.server.PeerCertificates) == 0 || !h.server.PeerCertificates[0].Equal(step.cert.Cert) {
			t.Fatalf("step %d: the server sees %v, want the certificate the link presents", i, leafNames(h.server))
		}
		if err := in.VerifyPeer(step.from, h.server); err != nil {
			t.Fatalf("step %d: VerifyPeer(%s) on the server's side: %v", i, step.from, err)
		}
	}
}

// TestResumptionExpired (fake clock): a session whose certificates have
// expired is not resumed by either side; a full handshake runs and judges
// the certificates presented now: refused when they are the expired ones,
// accepted when they were renewed.
func TestResumptionExpired(t *testing.T) {
	f := newFixture(t)
	clk := newClock()
	short := func(name string) *testcert.Leaf {
		return f.leaf(t, f.ca, testcert.Options{DNSNames: []string{name}, NotAfter: clk.now().Add(2 * time.Hour)})
	}
	t.Run("server certificate", func(t *testing.T) {
		srv := &switchCert{}
		srv.set(short(domainB))
		out := f.config(RequiredTrusted, f.a)
		out.Time = clk.now
		in := &Config{Mode: RequiredTrusted, Roots: f.ca.Pool(), Cert: srv, Time: clk.now}
		if h := link(t, out, in, domainB, domainA); h.clientErr != nil || h.serverErr != nil || h.client.DidResume {
			t.Fatalf("first link: %v %v, resumed %v", h.clientErr, h.serverErr, h.client.DidResume)
		}
		if h := link(t, out, in, domainB, domainA); !h.resumed() {
			t.Fatalf("second link did not resume: %v %v", h.clientErr, h.serverErr)
		}
		clk.add(3 * time.Hour)
		h := link(t, out, in, domainB, domainA)
		var inv x509.CertificateInvalidError
		if h.client.DidResume || !errors.As(h.clientErr, &inv) || inv.Reason != x509.Expired {
			t.Fatalf("server certificate expired: resumed %v, client %v; want a full handshake refused as expired", h.client.DidResume, h.clientErr)
		}
		srv.set(f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainB}, NotAfter: clk.now().Add(48 * time.Hour)}))
		h = link(t, out, in, domainB, domainA)
		if h.clientErr != nil || h.serverErr != nil || h.client.DidResume {
			t.Fatalf("renewed server certificate: %v %v, resumed %v; want a full handshake", h.clientErr, h.serverErr, h.client.DidResume)
		}
		if !h.client.PeerCertificates[0].NotAfter.After(clk.now()) {
			t.Fatal("the client did not get the renewed certificate")
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		cli := &switchCert{}
		cli.set(short(domainA))
		out := &Config{Mode: RequiredTrusted, Roots: f.ca.Pool(), Cert: cli, Time: clk.now}
		in := f.config(RequiredTrusted, f.b)
		in.Time = clk.now
		// The server's certificate must outlive the clock's moves.
		in.Cert = StaticCert(f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainB}, NotAfter: clk.now().Add(72 * time.Hour)}).TLS)
		if h := link(t, out, in, domainB, domainA); h.clientErr != nil || h.serverErr != nil {
			t.Fatalf("first link: %v %v", h.clientErr, h.serverErr)
		}
		if h := link(t, out, in, domainB, domainA); !h.resumed() {
			t.Fatalf("second link did not resume: %v %v", h.clientErr, h.serverErr)
		}
		clk.add(3 * time.Hour)
		h := link(t, out, in, domainB, domainA)
		var inv x509.CertificateInvalidError
		if h.server.DidResume || !errors.As(h.serverErr, &inv) || inv.Reason != x509.Expired {
			t.Fatalf("client certificate expired: server resumed %v, error %v; want a full handshake refused as expired", h.server.DidResume, h.serverErr)
		}
		cli.set(f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainA}, NotAfter: clk.now().Add(48 * time.Hour)}))
		if h := link(t, out, in, domainB, domainA); h.clientErr != nil || h.serverErr != nil || h.server.DidResume {
			t.Fatalf("renewed client certificate: %v %v, resumed %v; want a full handshake", h.clientErr, h.serverErr, h.server.DidResume)
		}
	})
}

// TestResumptionAfterReload: a new Config (what Reload makes) neither
// redeems the old one's tickets nor offers its sessions, so a session the
// new roots or mode would refuse is never resumed: the full handshake
// judges it.
func TestResumptionAfterReload(t *testing.T) {
	f := newFixture(t)
	untrustedB := f.leaf(t, f.otherCA, testcert.Options{DNSNames: []string{domainB}})
	untrustedA := f.leaf(t, f.otherCA, testcert.Options{DNSNames: []string{domainA}})
	otherRoots := f.otherCA.Pool()

	t.Run("client, mode", func(t *testing.T) {
		reloadRefuses(t, f.config(Required, f.a), f.config(Required, untrustedB),
			f.config(RequiredTrusted, f.a), false, "required_trusted after required")
	})
	t.Run("client, roots", func(t *testing.T) {
		reloaded := f.config(RequiredTrusted, f.a)
		reloaded.Roots = otherRoots
		reloadRefuses(t, f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b),
			reloaded, false, "other roots")
	})
	t.Run("server, mode", func(t *testing.T) {
		reloadRefuses(t, f.config(Required, untrustedA), f.config(Required, f.b),
			f.config(RequiredTrusted, f.b), true, "required_trusted after required")
	})
	t.Run("server, roots", func(t *testing.T) {
		reloaded := f.config(RequiredTrusted, f.b)
		reloaded.Roots = otherRoots
		reloadRefuses(t, f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b),
			reloaded, true, "other roots")
	})
}

// reloadRefuses links out to in twice, the second time resuming, then
// once more with reloaded in place of in (server) or of out, and wants
// that side's handshake a full one, refused as untrusted.
func reloadRefuses(t *testing.T, out, in, reloaded *Config, server bool, what string) {
	t.Helper()
	link(t, out, in, domainB, domainA)
	if h := link(t, out, in, domainB, domainA); !h.resumed() {
		t.Fatalf("the old Config did not resume: %v %v", h.clientErr, h.serverErr)
	}
	side := "client"
	var resumed bool
	var err error
	if server {
		h := link(t, out, reloaded, domainB, domainA)
		side, resumed, err = "server", h.server.DidResume, h.serverErr
	} else {
		h := link(t, reloaded, in, domainB, domainA)
		resumed, err = h.client.DidResume, h.clientErr
	}
	if resumed || !errors.Is(err, ErrUntrusted) {
		t.Fatalf("%s: %s resumed %v, %v; want a full handshake refused", what, side, resumed, err)
	}
}

// TestResumptionDisabled: DisableResumption on either side means full
// handshakes; TLS 1.2 never resumes (its resumption has no key exchange).
func TestResumptionDisabled(t *testing.T) {
	f := newFixture(t)
	tls12, err := ParseCiphers("TLSv1.2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		out, in func(*Config)
	}{
		{"client", func(c *Config) { c.DisableResumption = true }, func(*Config) {}},
		{"server", func(*Config) {}, func(c *Config) { c.DisableResumption = true }},
		{"TLS 1.2", func(c *Config) { c.Ciphers = tls12 }, func(*Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, in := f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b)
			tc.out(out)
			tc.in(in)
			for i := range 3 {
				h := link(t, out, in, domainB, domainA)
				if h.clientErr != nil || h.serverErr != nil || h.client.DidResume || h.server.DidResume {
					t.Fatalf("link %d: %v %v, resumed %v/%v; want full handshakes", i, h.clientErr, h.serverErr, h.client.DidResume, h.server.DidResume)
				}
			}
		})
	}
	if cfg, _ := (&Config{DisableResumption: true}).ClientConfig(domainB); cfg.ClientSessionCache != nil {
		t.Fatal("DisableResumption: ClientConfig has a session cache")
	}
	if cfg, _ := (&Config{DisableResumption: true, Cert: StaticCert(f.b.TLS)}).ServerConfig(""); !cfg.SessionTicketsDisabled {
		t.Fatal("DisableResumption: ServerConfig issues tickets")
	}
}

// TestTicketKeyRotation (fake clock): a ticket resumes for at least
// ticketRotation and at most ticketLifetime after it was issued, and the
// server holds no more keys than that takes.
func TestTicketKeyRotation(t *testing.T) {
	f := newFixture(t)
	clk := newClock()
	// Certificates valid through every move of the clock.
	long := func(name string) tls.Certificate {
		return f.leaf(t, f.ca, testcert.Options{DNSNames: []string{name}, NotAfter: clk.now().Add(30 * 24 * time.Hour)}).TLS
	}
	out := &Config{Mode: RequiredTrusted, Roots: f.ca.Pool(), Cert: StaticCert(long(domainA)), Time: clk.now}
	in := &Config{Mode: RequiredTrusted, Roots: f.ca.Pool(), Cert: StaticCert(long(domainB)), Time: clk.now}

	link(t, out, in, domainB, domainA) // a ticket from key 1
	clk.add(ticketRotation + time.Minute)
	if h := link(t, out, in, domainB, domainA); !h.resumed() {
		t.Fatalf("a ticket one rotation old did not resume: %v %v", h.clientErr, h.serverErr)
	}
	// That link was sealed with key 2 (made as it was issued); its ticket
	// is the client's now. Past key 2's lifetime it no longer opens.
	clk.add(ticketLifetime)
	if h := link(t, out, in, domainB, domainA); h.client.DidResume || h.clientErr != nil || h.serverErr != nil {
		t.Fatalf("a ticket past its key's lifetime: resumed %v, %v %v; want a full handshake", h.client.DidResume, h.clientErr, h.serverErr)
	}
	s := in.resumption()
	s.mu.Lock()
	n := len(s.keys)
	s.mu.Unlock()
	if n > 2 {
		t.Fatalf("the server holds %d ticket keys, want at most 2", n)
	}
}

// TestSessionCacheBound: the client cache holds SessionCacheSize sessions,
// dropping the least recently used.
func TestSessionCacheBound(t *testing.T) {
	c := newSessionCache(2)
	st := &tls.ClientSessionState{}
	c.put("a", st, 0, window{})
	c.put("b", st, 0, window{})
	if _, _, ok := c.get("a", 0); !ok {
		t.Fatal("a missing")
	}
	c.put("c", st, 0, window{}) // b is the least recently used
	if _, _, ok := c.get("b", 0); ok || c.len() != 2 {
		t.Fatalf("after a third session: b kept %v, %d held; want b dropped, 2 held", ok, c.len())
	}
	for _, k := range []string{"a", "c"} {
		if _, _, ok := c.get(k, 0); !ok {
			t.Fatalf("%s dropped", k)
		}
	}
	c.put("d", st, 100, window{})
	if _, _, ok := c.get("d", 101); ok || c.len() != 1 {
		t.Fatalf("an expired session was returned, or kept (%d held)", c.len())
	}
	cfg := &Config{SessionCacheSize: 3}
	if got := cfg.resumption().cache.max; got != 3 {
		t.Fatalf("SessionCacheSize 3: cache of %d", got)
	}
	if got := (&Config{}).resumption().cache.max; got != DefaultSessionCacheSize {
		t.Fatalf("default cache of %d", got)
	}
}

// TestShareSessions: a Config rebuilt with the same mode, roots and
// ciphers (a reload of other settings) resumes the sessions of the one it
// replaces, in both roles; one with other rules starts with none. With
// another certificate the state is shared, but what it holds is bound to
// the old certificate: nothing resumes until a link made with the new one.
func TestShareSessions(t *testing.T) {
	f := newFixture(t)
	tls12, err := ParseCiphers("TLSv1.2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		shared  bool
		resumes bool
	}{
		{"same settings", func(*Config) {}, true, true},
		{"other certificate", func(c *Config) {
			c.Cert = StaticCert(f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainA, domainB}}).TLS)
		}, true, false},
		{"roots equal, another pool", func(c *Config) { c.Roots = f.ca.Pool() }, true, true},
		{"other mode", func(c *Config) { c.Mode = Required }, false, false},
		{"other roots", func(c *Config) { c.Roots = f.otherCA.Pool() }, false, false},
		{"system roots", func(c *Config) { c.Roots = nil }, false, false},
		{"other ciphers", func(c *Config) { c.Ciphers = tls12 }, false, false},
		{"resumption off", func(c *Config) { c.DisableResumption = true }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, in := f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b)
			if h := link(t, out, in, domainB, domainA); h.clientErr != nil || h.serverErr != nil {
				t.Fatalf("first link: %v %v", h.clientErr, h.serverErr)
			}
			// Each side reloads in turn; the side that did not keeps its
			// Config, so a resumption needs the reloaded one's state.
			for _, side := range []string{"client", "server"} {
				old := out
				if side == "server" {
					old = in
				}
				n := f.config(old.Mode, nil)
				n.Cert = old.Cert
				tc.change(n)
				if got := n.ShareSessions(old); got != tc.shared {
					t.Fatalf("%s: ShareSessions = %v, want %v", side, got, tc.shared)
				}
				o, i := out, in
				if side == "client" {
					o = n
				} else {
					i = n
				}
				h := link(t, o, i, domainB, domainA)
				// Other roots refuse the peer: only the resumption counts.
				failed := tc.shared && (h.clientErr != nil || h.serverErr != nil)
				if failed || h.client.DidResume != tc.resumes || h.server.DidResume != tc.resumes {
					t.Fatalf("%s reloaded: %v %v, resumed %v/%v; want %v", side, h.clientErr, h.serverErr, h.client.DidResume, h.server.DidResume, tc.resumes)
				}
				if !tc.resumes {
					return // the state differs from here on
				}
			}
		})
	}
	c := f.config(RequiredTrusted, f.a)
	c.ClientConfig(domainB)
	if c.ShareSessions(f.config(RequiredTrusted, f.a)) {
		t.Fatal("ShareSessions on a Config in use reported true")
	}
}

// TestCheckReusesVerifiedChain: inside the window of a chain a handshake
// under the same rules verified (what a resumed session carries), check
// does not verify the chain again but still checks the name; outside it,
// or with no window, the chain is verified in full.
func TestCheckReusesVerifiedChain(t *testing.T) {
	f := newFixture(t)
	clk := newClock()
	c := f.config(RequiredTrusted, f.b)
	c.Time = clk.now
	good := tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.a.Cert}}
	w, err := c.check(domainA, good, clientUsage, window{})
	if err != nil {
		t.Fatal(err)
	}
	if want := windowOf([]*x509.Certificate{f.a.Cert, f.ca.Cert}); w != want || !w.covers(clk.now()) {
		t.Fatalf("window %+v, want %+v (the leaf's and the root's validity), covering now", w, want)
	}
	// A chain no root here signed, given the window: the signatures are
	// not checked again (only a session of ours carries a window)...
	untrusted := tls.ConnectionState{PeerCertificates: []*x509.Certificate{
		f.leaf(t, f.otherCA, testcert.Options{DNSNames: []string{domainA}}).Cert,
	}}
	if _, err := c.check(domainA, untrusted, clientUsage, w); err != nil {
		t.Fatalf("inside the window: %v", err)
	}
	// ...but the name is.
	if _, err := c.check("c.example.net", untrusted, clientUsage, w); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("inside the window, another name: %v, want ErrNameMismatch", err)
	}
	// Without a window, or past its end, the chain is checked.
	if _, err := c.check(domainA, untrusted, clientUsage, window{}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("no window: %v, want ErrUntrusted", err)
	}
	clk.t = time.Unix(w.until, 0)
	if _, err := c.check(domainA, untrusted, clientUsage, w); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("at the window's end: %v, want ErrUntrusted", err)
	}
	clk.t = time.Unix(w.from, 0)
	if _, err := c.check(domainA, untrusted, clientUsage, w); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("at the window's start: %v, want ErrUntrusted", err)
	}
}

// TestResumedWindowCarried: a resumed handshake carries the window of the
// session's first handshake on both sides, so that the next ticket and
// the next cached session have it too (a chain of resumptions never
// checks the chain again inside its window, and always does after it).
func TestResumedWindowCarried(t *testing.T) {
	f := newFixture(t)
	out, in := f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b)
	for i := range 3 {
		if h := link(t, out, in, domainB, domainA); h.clientErr != nil || h.serverErr != nil || h.client.DidResume != (i > 0) {
			t.Fatalf("link %d: %v %v, resumed %v", i, h.clientErr, h.serverErr, h.client.DidResume)
		}
	}
	sum := out.resumption().print(&f.a.TLS)
	_, w, ok := out.resumption().cache.get(string(sum[:])+domainB, time.Now().Unix())
	if want := windowOf([]*x509.Certificate{f.b.Cert, f.ca.Cert}); !ok || w != want {
		t.Fatalf("the client's session after two resumptions: window %+v (found %v), want %+v", w, ok, want)
	}
}

// inPlaceCert is a CertSource that replaces its certificate in place: the
// same pointer, another chain.
type inPlaceCert struct {
	mu   sync.Mutex
	cert tls.Certificate
}

func (s *inPlaceCert) set(l *testcert.Leaf) {
	s.mu.Lock()
	s.cert = l.TLS
	s.mu.Unlock()
}

func (s *inPlaceCert) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.cert, nil
}

// TestResumptionCertReplacedInPlace: a source that hands out the same
// pointer with another certificate in it is seen to have changed: the
// client does not offer the old certificate's session, and the server does
// not resume a ticket bound to its old certificate.
func TestResumptionCertReplacedInPlace(t *testing.T) {
	f := newFixture(t)
	other := f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainA, "c.example.net"}})
	for _, side := range []string{"client", "server"} {
		t.Run(side, func(t *testing.T) {
			src := &inPlaceCert{}
			out, in := f.config(RequiredTrusted, f.a), f.config(RequiredTrusted, f.b)
			first, second := f.a, other
			if side == "client" {
				out.Cert = src
			} else {
				in.Cert = src
				first, second = f.b, f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainB}})
			}
			src.set(first)
			link(t, out, in, domainB, domainA)
			if h := link(t, out, in, domainB, domainA); !h.resumed() {
				t.Fatalf("same certificate: not resumed (%v %v)", h.clientErr, h.serverErr)
			}
			src.set(second)
			h := link(t, out, in, domainB, domainA)
			if h.clientErr != nil || h.serverErr != nil || h.client.DidResume || h.server.DidResume {
				t.Fatalf("certificate replaced in place: %v %v, resumed %v/%v; want a full handshake", h.clientErr, h.serverErr, h.client.DidResume, h.server.DidResume)
			}
			peer := h.server.PeerCertificates
			if side == "server" {
				peer = h.client.PeerCertificates
			}
			if len(peer) == 0 || !peer[0].Equal(second.Cert) {
				t.Fatal("the peer did not get the new certificate")
			}
		})
	}
}
