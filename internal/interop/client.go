package interop

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientScript is the slixmpp client the tests drive (see its header).
//
//go:embed xmppclient.py
var clientScript []byte

// debianPython is the interpreter that sees Debian's python3-slixmpp; a
// python3 earlier in PATH (pyenv, a virtualenv) may not.
const debianPython = "/usr/bin/python3"

// ClientConfig describes one client login.
type ClientConfig struct {
	JID, Password string
	// Addr is the server's client port, host:port.
	Addr string
	// CAPEM is the root the server's certificate chains to; the client
	// verifies the certificate against it and the JID's domain.
	CAPEM []byte
	// Mechanism forces a SASL mechanism ("PLAIN", "SCRAM-SHA-1"); empty
	// lets slixmpp pick the strongest offered.
	Mechanism string
}

// Event is what the client reports: a stanza it received (Event is
// "message" or "presence"), the answer to Ping or Disco ("pong", "disco",
// or "iq-error" with Error set), or "online", "failed", "offline".
type Event struct {
	Event  string `json:"event"`
	JID    string `json:"jid"`
	From   string `json:"from"`
	To     string `json:"to"`
	Type   string `json:"type"`
	ID     string `json:"id"`
	Body   string `json:"body"`
	Status string `json:"status"`
	// Error is the stanza error condition of a stanza of type error.
	Error  string `json:"error"`
	Reason string `json:"reason"`
	// Identities ("category/type") and Features of a "disco" answer.
	Identities []string `json:"identities"`
	Features   []string `json:"features"`
}

// Client is a real XMPP client (slixmpp, from Debian's python3-slixmpp)
// logged in to a server, driven by the test.
type Client struct {
	// JID is the full JID the server bound.
	JID string

	t      testing.TB
	stdin  io.WriteCloser
	events chan Event
	mu     sync.Mutex
	seen   []Event // every event, for the log of a failed test
	// pending are events received while waiting for others, in order;
	// Expect looks at them first, so the order of arrival of unrelated
	// stanzas does not matter.
	pending []Event
}

// StartClient logs a slixmpp client in and waits until its session has
// started (it has sent its initial presence and fetched its roster). The
// test's cleanup ends it. Without Debian's python3 and python3-slixmpp the
// test is skipped, or fails with CI=true.
func StartClient(t testing.TB, c ClientConfig) *Client {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		missing(t, fmt.Sprintf("%s not found; install the Debian package \"python3-slixmpp\"", debianPython))
	}
	if out, err := exec.Command(debianPython, "-c", "import slixmpp").CombinedOutput(); err != nil {
		missing(t, fmt.Sprintf("python3 cannot import slixmpp (%v: %s); install the Debian package \"python3-slixmpp\"", err, strings.TrimSpace(string(out))))
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "xmppclient.py")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(script, clientScript, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, c.CAPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, ok := strings.Cut(c.Addr, ":")
	if !ok {
		t.Fatalf("interop: client address %q is not host:port", c.Addr)
	}
	args := []string{script, c.JID, c.Password, host, port, ca}
	if c.Mechanism != "" {
		args = append(args, c.Mechanism)
	}
	cmd := exec.Command(debianPython, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop: starting the client: %v", err)
	}
	cl := &Client{t: t, stdin: stdin, events: make(chan Event, 256)}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = Event{Event: "failed", Reason: "unreadable output: " + sc.Text()}
			}
			cl.events <- ev
		}
		close(cl.events)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			cl.mu.Lock()
			t.Logf("client %s saw %d events: %+v\nstderr:\n%s", c.JID, len(cl.seen), cl.seen, stderr.String())
			cl.mu.Unlock()
		}
	})
	ev := cl.Expect("its session to start", func(e Event) bool { return e.Event == "online" })
	cl.JID = ev.JID
	return cl
}

// lockedWriter makes a strings.Builder safe for exec's copying goroutine
// and the cleanup that reads it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ClientWait bounds each wait for what a client should receive.
const ClientWait = 60 * time.Second

// Expect returns the first event, received before or within ClientWait,
// that match accepts; the others stay for later calls. A "failed" event or
// the client's exit fails the test.
func (c *Client) Expect(what string, match func(Event) bool) Event {
	c.t.Helper()
	for i, ev := range c.pending {
		if match(ev) {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return ev
		}
	}
	timeout := time.After(ClientWait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatalf("client %s exited while waiting for %s", c.JID, what)
			}
			c.mu.Lock()
			c.seen = append(c.seen, ev)
			c.mu.Unlock()
			if ev.Event == "failed" {
				c.t.Fatalf("client %s: %s (waiting for %s)", c.JID, ev.Reason, what)
			}
			if match(ev) {
				return ev
			}
			c.pending = append(c.pending, ev)
		case <-timeout:
			c.t.Fatalf("client %s: no %s within %v", c.JID, what, ClientWait)
		}
	}
}

// Message sends a message stanza.
func (c *Client) Message(to, typ, id, body string) {
	c.command(map[string]string{"op": "message", "to": to, "type": typ, "id": id, "body": body})
}

// Presence sends a presence stanza; to and typ may be empty (broadcast,
// available).
func (c *Client) Presence(to, typ, status string) {
	cmd := map[string]string{"op": "presence"}
	if to != "" {
		cmd["to"] = to
	}
	if typ != "" {
		cmd["type"] = typ
	}
	if status != "" {
		cmd["status"] = status
	}
	c.command(cmd)
}

// Ping sends a XEP-0199 ping; the answer is a "pong" or "iq-error" event
// from to.
func (c *Client) Ping(to string) {
	c.command(map[string]string{"op": "ping", "to": to})
}

// Disco asks to for its disco#info; the answer is a "disco" or "iq-error"
// event from to.
func (c *Client) Disco(to string) {
	c.command(map[string]string{"op": "disco", "to": to})
}

func (c *Client) command(cmd map[string]string) {
	c.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("client %s: %v", c.JID, err)
	}
}

// Bare returns the bare form of a JID.
func Bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}
