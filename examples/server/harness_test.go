package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/s2s"
)

// wait bounds every wait for something the network does; it is a failure
// bound, never a delay.
const wait = 30 * time.Second

// testServer is an example server running in the test's process on
// loopback ports.
type testServer struct {
	domain string
	c2s    string // address
	s2s    string
	srv    *server
	roots  *x509.CertPool
}

// world is a set of servers sharing one test CA.
type world struct {
	ca  *testcert.CA
	dir string
}

func newWorld(t *testing.T) *world {
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	return &world{ca: ca, dir: t.TempDir()}
}

// listen opens the two listeners of a server, so that peers can be told
// where it is before it starts.
func listen(t *testing.T) (c2s, s2sLn net.Listener) {
	t.Helper()
	var err error
	if c2s, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s2sLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return c2s, s2sLn
}

// start runs a server for domain on the given listeners, with an [s2s]
// section of extraS2S lines and the accounts given as user:password
// (local part only).
func (w *world) start(t *testing.T, domain string, c2s, s2sLn net.Listener, extraS2S string, users ...string) *testServer {
	t.Helper()
	leaf, err := w.ca.Leaf(testcert.Options{DNSNames: []string{domain}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(w.dir, domain)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), leaf.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), w.ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	var accts strings.Builder
	for _, u := range users {
		name, pass, _ := strings.Cut(u, ":")
		fmt.Fprintf(&accts, "%s@%s %s\n", name, domain, pass)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.txt"), []byte(accts.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// No s2s.certfile: the s2s streams present server.certfile (and
	// TestRunProgram covers the other way round).
	cfg := fmt.Sprintf("[server]\ndomains = [%q]\ncertfile = \"cert.pem\"\ncafile = \"ca.pem\"\naccounts = \"accounts.txt\"\n\n[s2s]\n%s\n", domain, extraS2S)
	path := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := loadAccounts(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})).With("server", domain)
	srv, err := newServer(c, acc, log)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.serve(c2s, s2sLn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := srv.shutdown(ctx); err != nil {
			t.Errorf("shutdown of %s: %v", domain, err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve of %s: %v", domain, err)
		}
	})
	return &testServer{domain: domain, c2s: c2s.Addr().String(), s2s: s2sLn.Addr().String(), srv: srv, roots: w.ca.Pool()}
}

// address is an [s2s] address entry pointing host at addr.
func address(host, addr string) string {
	h, p, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("{host = %q, ip_address = %q, port = %s}", host, h, p)
}

// testWriter sends logs to the test's log, and nowhere once it ended
// (testing forbids logging after the test completed).
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// testClient is a client session made with mellium's client side.
type testClient struct {
	t    *testing.T
	jid  jid.JID
	sess *xmpp.Session
	in   chan s2s.Stanza
}

// login connects user@domain with one SASL mechanism.
func login(t *testing.T, s *testServer, user, pass string, mech sasl.Mechanism) (*testClient, error) {
	t.Helper()
	conn, err := net.Dial("tcp", s.c2s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	origin := jid.MustParse(user + "@" + s.domain)
	sess, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(&tls.Config{ServerName: s.domain, RootCAs: s.roots, MinVersion: tls.VersionTLS12}),
		xmpp.SASL("", pass, mech),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &testClient{t: t, jid: sess.LocalAddr(), sess: sess, in: make(chan s2s.Stanza, 64)}
	go c.read()
	t.Cleanup(func() { sess.Close(); conn.Close() })
	return c, nil
}

func mustLogin(t *testing.T, s *testServer, user, pass string) *testClient {
	t.Helper()
	c, err := login(t, s, user, pass, sasl.ScramSha256)
	if err != nil {
		t.Fatalf("login %s@%s: %v", user, s.domain, err)
	}
	return c
}

func (c *testClient) read() {
	defer close(c.in)
	r := c.sess.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		st, err := s2s.ReadStanza(r, &start, 0)
		if err != nil {
			return
		}
		c.in <- st
	}
}

// send writes raw, a stanza in the client's namespace.
func (c *testClient) send(raw string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.sess.Send(ctx, xml.NewDecoder(strings.NewReader(raw))); err != nil {
		c.t.Fatalf("%s sending %s: %v", c.jid, raw, err)
	}
}

// expect waits for a stanza that match accepts, skipping others.
func (c *testClient) expect(what string, match func(s2s.Stanza) bool) s2s.Stanza {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case st, ok := <-c.in:
			if !ok {
				c.t.Fatalf("%s: the stream ended while waiting for %s", c.jid, what)
			}
			if match(st) {
				return st
			}
			c.t.Logf("%s: skipping %s", c.jid, st.Raw)
		case <-timeout:
			c.t.Fatalf("%s: no %s within %v", c.jid, what, wait)
		}
	}
}

// closed waits for the server to end the client's stream.
func (c *testClient) closed() {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case st, ok := <-c.in:
			if !ok {
				return
			}
			c.t.Logf("%s: skipping %s", c.jid, st.Raw)
		case <-timeout:
			c.t.Fatalf("%s: the stream did not end within %v", c.jid, wait)
		}
	}
}

// errorCondition returns the condition of an error stanza, "" if none.
func errorCondition(st s2s.Stanza) string {
	d := xml.NewDecoder(strings.NewReader(string(st.Raw)))
	inError := false
	for {
		tok, err := d.Token()
		if err == io.EOF || err != nil {
			return ""
		}
		if s, ok := tok.(xml.StartElement); ok {
			if s.Name.Local == "error" {
				inError = true
				continue
			}
			if inError && s.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && s.Name.Local != "text" {
				return s.Name.Local
			}
		}
	}
}

// is matches a stanza by kind, type and, when set, the bare sender.
func is(name, typ, fromBare string) func(s2s.Stanza) bool {
	return func(st s2s.Stanza) bool {
		if st.Name != name || st.Type != typ {
			return false
		}
		if fromBare == "" {
			return true
		}
		f, _ := bareOf(st.From)
		return f == fromBare
	}
}
