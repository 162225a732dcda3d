package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// The tests run the stub as a real process: the test binary itself, which
// becomes the stub when this variable is set. That tests main, flags, stdio
// and signals as a test suite in another language would meet them, without
// a go build per run.
const beStub = "FEDERATION_STUB_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beStub) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// wait bounds every wait: generous for a loaded machine, short enough to
// fail a hung test.
const wait = 30 * time.Second

// stubProc is a running stub and what it printed.
type stubProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan event
	stderr *lockedBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startStub runs the stub with args. Every stdout line must be a JSON event.
func startStub(t *testing.T, args ...string) *stubProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), beStub+"=1")
	p := &stubProc{t: t, cmd: cmd, events: make(chan event, 1000), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e event
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Event == "" {
				t.Errorf("stdout line is not an event: %q (%v)", sc.Text(), err)
				continue
			}
			p.events <- e
		}
	}()
	go func() {
		<-read // Wait closes stdout: read it all first
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("stub stderr:\n%s", p.stderr)
		}
	})
	return p
}

// next returns the first event that match accepts, skipping others.
func (p *stubProc) next(what string, match func(event) bool) event {
	p.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-p.events:
			if match(e) {
				return e
			}
		case <-p.exited:
			// Events printed before the exit may still be buffered.
			select {
			case e := <-p.events:
				if match(e) {
					return e
				}
				continue
			default:
			}
			p.t.Fatalf("stub exited (%v) before %s", p.err, what)
		case <-deadline:
			p.t.Fatalf("no %s from the stub", what)
		}
	}
}

// all returns, for each named matcher, the first event it accepts, in
// whatever order the events come; others are skipped.
func (p *stubProc) all(want map[string]func(event) bool) map[string]event {
	p.t.Helper()
	got := make(map[string]event, len(want))
	for len(got) < len(want) {
		var names []string
		for n := range want {
			if _, ok := got[n]; !ok {
				names = append(names, n)
			}
		}
		p.next(strings.Join(names, ", "), func(e event) bool {
			for _, n := range names {
				if want[n](e) {
					got[n] = e
					return true
				}
			}
			return false
		})
	}
	return got
}

func (p *stubProc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("stdin: %v", err)
	}
}

// exitCode waits for the stub to end and returns its exit status.
func (p *stubProc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(wait):
		p.t.Fatal("stub did not exit")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("stub: %v", p.err)
	}
	return 0
}

// host is the Manager under test: the server the stub federates with.
type host struct {
	t         testing.TB
	m         *s2s.Manager
	addr      netip.AddrPort
	delivered chan s2s.Stanza
	bounced   chan s2s.Bounce
}

func (h *host) send(raw string) {
	h.t.Helper()
	if err := h.m.Send(context.Background(), []byte(raw)); err != nil {
		h.t.Fatalf("Send(%s): %v", raw, err)
	}
}

func (h *host) next() s2s.Stanza {
	h.t.Helper()
	select {
	case s := <-h.delivered:
		return s
	case b := <-h.bounced:
		h.t.Fatalf("host bounced %s: %s: %s", b.Stanza.Raw, b.Condition, b.Text)
	case <-time.After(wait):
		h.t.Fatal("host received nothing")
	}
	return s2s.Stanza{}
}

// world is a test CA, a temporary directory holding the stub's files, and a
// host Manager whose port is reserved before the stub starts.
type world struct {
	t   testing.TB
	dir string
	ca  *testcert.CA
	ln  net.Listener
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ca, err := testcert.NewCA("stub test CA")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	w := &world{t: t, dir: t.TempDir(), ca: ca, ln: ln}
	w.write("ca.pem", ca.PEM())
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{"stub.test", "other.test"}})
	if err != nil {
		t.Fatal(err)
	}
	w.write("stub.pem", leaf.PEM)
	return w
}

func (w *world) write(name string, data []byte) string {
	w.t.Helper()
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// hostAddr is the host's loopback port, for the stub's address option.
func (w *world) hostAddr() netip.AddrPort { return w.ln.Addr().(*net.TCPAddr).AddrPort() }

// startHost starts host.test, reaching the stub's domains at stubAddr.
func (w *world) startHost(mode string, stubAddr string) *host {
	t := w.t
	t.Helper()
	ap := netip.MustParseAddrPort(stubAddr)
	s := config.Default()
	s.UseStartTLS = mode
	for _, d := range []string{"stub.test", "other.test"} {
		s.Address = append(s.Address, config.Address{Host: d, IP: ap.Addr(), Port: int(ap.Port())})
	}
	leaf, err := w.ca.Leaf(testcert.Options{DNSNames: []string{"host.test"}})
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, addr: w.hostAddr(), delivered: make(chan s2s.Stanza, 100), bounced: make(chan s2s.Bounce, 100)}
	m, err := s2s.New(s2s.Config{
		S2S:         s,
		IsLocal:     func(d string) bool { return d == "host.test" },
		Deliver:     func(s s2s.Stanza) { h.delivered <- s },
		Bounce:      func(b s2s.Bounce) { h.bounced <- b },
		RootCAs:     w.ca.Pool(),
		Certificate: starttls.StaticCert(leaf.TLS),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	go m.Serve(w.ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		m.Shutdown(ctx)
	})
	return h
}

// stubConfig writes the stub's configuration: the mode, its certificate,
// the host's address, nowhere.test on a port nobody listens on, and
// denied.test denied.
func (w *world) stubConfig(mode string) string {
	w.t.Helper()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	cert := ""
	if mode != "false" {
		cert = `certfile = "stub.pem"`
	}
	return w.write("stub.toml", fmt.Appendf(nil, `# the stub's options
[s2s]
  use_starttls = %q
  %s
  host_policy = [{host = "denied.test", policy = "deny"}]
  address = [
    {host = "host.test", ip_address = "127.0.0.1", port = %d},
    {host = "nowhere.test", ip_address = "127.0.0.1", port = %d},
  ]
`, mode, cert, w.hostAddr().Port(), deadPort))
}

func isEvent(name string) func(event) bool {
	return func(e event) bool { return e.Event == name }
}

func TestStub(t *testing.T) {
	for _, mode := range []string{"required_trusted", "false"} {
		t.Run(mode, func(t *testing.T) { testStub(t, mode) })
	}
}

// testStub walks through the whole contract against one stub process.
func testStub(t *testing.T, mode string) {
	w := newWorld(t)
	p := startStub(t, "-config", w.stubConfig(mode), "-cafile", filepath.Join(w.dir, "ca.pem"),
		"-domain", "stub.test, Other.Test", "-listen", "127.0.0.1:0", "-echo")
	l := p.next("listening event", isEvent(evListening))
	if strings.Join(l.Domains, ",") != "stub.test,other.test" {
		t.Errorf("listening on %v", l.Domains)
	}
	h := w.startHost(mode, l.Addr)
	wantTLS := "TLS1.3"
	if mode == "false" {
		wantTLS = "none"
	}

	// A ping to the stub's domain is answered, and the stub reports the
	// incoming link and the ping.
	h.send(`<iq from='host.test' to='stub.test' id='ping1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := h.next(); got.Name != "iq" || got.Type != "result" || got.ID != "ping1" || got.From != "stub.test" || got.To != "host.test" {
		t.Fatalf("ping answered with %s", got.Raw)
	}
	// The Manager may report the incoming link up after the first stanza it
	// carried: take the three events in any order.
	got := p.all(map[string]func(event) bool{
		"in":     func(e event) bool { return e.Event == evLinkUp && e.Direction == "in" },
		"out":    func(e event) bool { return e.Event == evLinkUp && e.Direction == "out" },
		"stanza": isEvent(evStanza),
	})
	wantAuth := s2s.AuthSASLExternal // certificates both sides trust
	if wantTLS == "none" {
		wantAuth = s2s.AuthDialback
	}
	for _, dir := range []string{"in", "out"} {
		up := got[dir]
		if up.Local != "stub.test" || up.Remote != "host.test" || up.TLS != wantTLS || up.Auth != wantAuth.String() {
			t.Errorf("%s link-up %+v", dir, up)
		}
	}
	if st := got["stanza"]; st.From != "host.test" || st.To != "stub.test" || st.ID != "ping1" || !strings.Contains(st.XML, "urn:xmpp:ping") {
		t.Errorf("stanza event %+v", st)
	}

	// The second domain, piggybacked on the host's stream or on a new one.
	h.send(`<iq from='host.test' to='other.test' id='ping2' type='get'><p:ping xmlns:p='urn:xmpp:ping'/></iq>`)
	if got := h.next(); got.Type != "result" || got.ID != "ping2" || got.From != "other.test" {
		t.Fatalf("ping to other.test answered with %s", got.Raw)
	}

	// Any other request gets service-unavailable.
	h.send(`<iq from='host.test' to='stub.test' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>`)
	if got := h.next(); got.Type != "error" || got.ID != "v1" || !strings.Contains(string(got.Raw), "<service-unavailable") {
		t.Fatalf("version request answered with %s", got.Raw)
	}

	// -echo: the message comes back, addresses swapped, payload kept.
	h.send(`<message from='alice@host.test/r' to='echo@stub.test' id='e1' type='chat'><body>1 &lt; 2</body></message>`)
	echo := h.next()
	if echo.From != "echo@stub.test" || echo.To != "alice@host.test/r" || echo.ID != "e1" || !strings.Contains(string(echo.Raw), "<body>1 &lt; 2</body>") {
		t.Fatalf("echo is %s", echo.Raw)
	}

	// stdin: a stanza per line is sent; jabber:client is accepted.
	p.send(`<message xmlns='jabber:client' from='bob@stub.test' to='alice@host.test' id='s1'><body>from stdin</body></message>`)
	if got := h.next(); got.ID != "s1" || got.From != "bob@stub.test" {
		t.Fatalf("host received %s", got.Raw)
	}

	// Bounces: a denied domain at once, a dead one after the connection is
	// refused; each names its condition and the stanza.
	p.send(`<message from='bob@stub.test' to='x@denied.test' id='b1'/>`)
	b := p.next("policy bounce", isEvent(evBounce))
	if b.Condition != "policy-violation" || b.ID != "b1" || b.To != "x@denied.test" || !strings.Contains(b.Text, "denied.test") || !strings.Contains(b.XML, "id='b1'") {
		t.Errorf("bounce %+v", b)
	}
	p.send(`<message from='bob@stub.test' to='x@nowhere.test' id='b2'><body>lost</body></message>`)
	// The failed attempt is reported before the stanzas it bounces.
	p.next("link error for nowhere.test", func(e event) bool {
		return e.Event == evError && e.Op == "link" && e.Remote == "nowhere.test" && e.Direction == "out" && e.Local == "stub.test"
	})
	b = p.next("remote-server-not-found bounce", isEvent(evBounce))
	if b.Condition != "remote-server-not-found" || b.ID != "b2" || !strings.Contains(b.Text, "nowhere.test") {
		t.Errorf("bounce %+v", b)
	}

	// A line that is not a stanza is an error event, and the stub goes on.
	p.send(`<presence`)
	e := p.next("error event", isEvent(evError))
	if e.Op != "send" || e.XML != "<presence" || e.Error == "" {
		t.Errorf("error %+v", e)
	}
	p.send(`<iq from='stub.test' to='host.test' id='after' type='result'/>`)
	if got := h.next(); got.ID != "after" {
		t.Fatalf("host received %s", got.Raw)
	}

	// The host goes away: the stub reports its links to it going down.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		d := p.next("link-down for the host", isEvent(evLinkDown))
		if d.Remote == "host.test" && d.Reason != "" {
			seen[d.Direction] = true
		}
	}

	// SIGTERM: a clean exit.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}

// TestSignalDrains checks that both signals end the stub with status 0,
// closing its links on the way out.
func TestSignalDrains(t *testing.T) {
	for i, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(fmt.Sprint(i, "-", sig), func(t *testing.T) {
			w := newWorld(t)
			p := startStub(t, "-config", w.stubConfig("required"), "-domain", "stub.test", "-listen", "127.0.0.1:0")
			l := p.next("listening event", isEvent(evListening))
			h := w.startHost("required", l.Addr)
			// A link each way: the host's ping and its answer.
			h.send(`<iq from='host.test' to='stub.test' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`)
			if got := h.next(); got.ID != "p1" {
				t.Fatalf("host received %s", got.Raw)
			}
			// Both links must be up before the signal: the Manager may
			// report an incoming link up after the stanzas it carried.
			for _, dir := range []string{"in", "out"} {
				p.next(dir+" link-up", func(e event) bool { return e.Event == evLinkUp && e.Direction == dir })
			}
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for len(seen) < 2 {
				d := p.next("link-down", isEvent(evLinkDown))
				if d.Remote != "host.test" || d.Reason != "closed" {
					t.Errorf("link-down %+v, want a clean close", d)
				}
				seen[d.Direction] = true
			}
			if code := p.exitCode(); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
			}
		})
	}
}

func TestBadConfigExits2(t *testing.T) {
	w := newWorld(t)
	path := w.write("bad.toml", []byte("[s2s]\n  use_starttls = \"requird\"\n"))
	p := startStub(t, "-config", path, "-domain", "stub.test", "-listen", "127.0.0.1:0")
	if code := p.exitCode(); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	want := path + ":2:18: s2s.use_starttls: "
	if got := p.stderr.String(); !strings.HasPrefix(got, want) {
		t.Errorf("stderr = %q, want it to start with %q", got, want)
	}
	select {
	case e := <-p.events:
		t.Errorf("event on stdout: %+v", e)
	default:
	}
}

// TestTwoStubsPortZero: two stubs, each on a port the kernel picks, federate
// both ways: the second learns the first's address from -peer, the first
// learns the second's from a peer line on stdin, and neither port was
// chosen in advance.
func TestTwoStubsPortZero(t *testing.T) {
	a := startStub(t, "-domain", "a.test", "-listen", "127.0.0.1:0", "-echo")
	aAddr := a.next("a's listening event", isEvent(evListening)).Addr
	b := startStub(t, "-domain", "b.test", "-listen", "127.0.0.1:0", "-peer", "a.test="+aAddr)
	bAddr := b.next("b's listening event", isEvent(evListening)).Addr

	// A line a cannot use is reported and changes nothing.
	a.send("peer b.test=nowhere")
	if e := a.next("peer error", isEvent(evError)); e.Op != "peer" || !strings.Contains(e.Error, "want DOMAIN=IP:PORT") {
		t.Errorf("bad peer line: %+v", e)
	}
	a.send("peer b.test=" + bAddr)
	if e := a.next("peer event", isEvent(evPeer)); e.Remote != "b.test" || e.Addr != bAddr {
		t.Errorf("peer event %+v, want b.test at %s", e, bAddr)
	}

	// b links to a; a verifies b's key by connecting to bAddr, delivers,
	// and echoes the message back over its own link to b.
	b.send(`<message from='bob@b.test' to='alice@a.test' id='m1'><body>hi</body></message>`)
	if e := a.next("stanza at a", isEvent(evStanza)); e.ID != "m1" || e.From != "bob@b.test" {
		t.Errorf("a received %+v", e)
	}
	if e := b.next("echo at b", isEvent(evStanza)); e.ID != "m1" || e.From != "alice@a.test" || e.To != "bob@b.test" {
		t.Errorf("b received %+v", e)
	}
}

// TestParsePeer: the forms -peer and the peer line take, and the errors.
func TestParsePeer(t *testing.T) {
	for i, tc := range []struct {
		in, host, addr, err string
	}{
		0: {in: "Host.Test=127.0.0.1:5269", host: "host.test", addr: "127.0.0.1:5269"},
		1: {in: "host.test = [::1]:5270", host: "host.test", addr: "[::1]:5270"},
		2: {in: "host.test", err: `"host.test": want DOMAIN=IP:PORT`},
		3: {in: "host.test=localhost:5269", err: "with an IP address and a port other than 0"},
		4: {in: "host.test=127.0.0.1:0", err: "a port other than 0"},
		5: {in: "host..test=127.0.0.1:1", err: "invalid domain"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			a, err := parsePeer(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parsePeer(%q) = %+v, %v; want error %q", tc.in, a, err, tc.err)
				}
				return
			}
			if err != nil || a.Host != tc.host || netip.AddrPortFrom(a.IP, uint16(a.Port)).String() != tc.addr {
				t.Fatalf("parsePeer(%q) = %+v, %v", tc.in, a, err)
			}
		})
	}
}
