package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"runtime"
	"strings"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// The two-process variant: the receiving Manager runs in a child process,
// so that the link crosses a process boundary as it does between two real
// servers (separate schedulers, heaps and garbage collectors). The child is
// the running executable started again with peerEnv set; its main (or
// TestMain) must call ServePeerIfChild first. Certificates reach it through
// temporary files, its listening address comes back on its stdout, and it
// ends when its stdin closes, so a harness that dies takes it along.

// peerEnv names the environment variable that makes a process the child,
// holding its peerSpec as JSON.
const peerEnv = "FEDERATION_BENCH_SERVE_PEER"

// peerSpec is what the child needs: PEM files, the TLS mode and where the
// sending side listens (for its answers and the dialback verification).
type peerSpec struct {
	TLS    bool   `json:"tls"`
	CA     string `json:"ca"`
	Leaf   string `json:"leaf"`
	Parent string `json:"parent"`
}

// ServePeerIfChild makes the process the receiving side of a two-process
// run when it was started as one by Run, and then exits; otherwise it
// returns at once. A program that calls Run with Config.TwoProcess must call
// it first thing in main (a test binary: in TestMain), before flags are
// parsed.
func ServePeerIfChild() {
	v, ok := os.LookupEnv(peerEnv)
	if !ok {
		return
	}
	if err := servePeer(v, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench peer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// servePeer runs the child's Manager until stdin reaches its end.
func servePeer(specJSON string, stdin io.Reader, stdout io.Writer) error {
	var spec peerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("bench: peer spec: %w", err)
	}
	parent, err := netip.ParseAddrPort(spec.Parent)
	if err != nil {
		return fmt.Errorf("bench: peer spec: %w", err)
	}
	caPEM, err := os.ReadFile(spec.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("bench: peer spec: no certificate in the CA file")
	}
	// The leaf file is the chain followed by the key, as testcert writes
	// it: both halves of the pair come from the one file.
	cert, err := tls.LoadX509KeyPair(spec.Leaf, spec.Leaf)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	self := ln.Addr().(*net.TCPAddr).AddrPort()
	mode := "false"
	if spec.TLS {
		mode = "required_trusted"
	}
	s := config.Default()
	s.UseStartTLS = mode
	// The same parsed answer as the in-process pair's, so that both
	// receivers do the same work per ping: every ping comes from
	// senderDomain(0).
	_, res := pingFor(senderDomain(0))
	reply, err := s2s.ParseStanza(res)
	if err != nil {
		ln.Close()
		return err
	}
	var m *s2s.Manager
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err = s2s.New(s2s.Config{
		S2S:     s,
		IsLocal: func(d string) bool { return d == receiverDomain },
		// Pings are answered over the child's own outgoing link, as in
		// the in-process pair; messages are dropped once delivered.
		Deliver: func(st s2s.Stanza) {
			if st.Name == "iq" && st.Type == "get" {
				m.SendStanza(ctx, reply)
			}
		},
		// A bounced answer leaves the harness waiting for it; saying so
		// on stderr tells why.
		Bounce: func(b s2s.Bounce) {
			fmt.Fprintln(os.Stderr, "bench peer: bounced:", b.Text)
		},
		Logger:      slog.New(slog.DiscardHandler),
		RootCAs:     pool,
		Certificate: starttls.StaticCert(cert),
		Resolver: peerResolver(func(d string) (netip.AddrPort, bool) {
			switch {
			case d == receiverDomain:
				return self, true
			case strings.HasSuffix(d, "."+senderZone):
				return parent, true
			}
			return netip.AddrPort{}, false
		}),
		QueueLength:   1 << 16,
		MaxPerAddress: -1,
		MaxIncoming:   -1,
	})
	if err != nil {
		ln.Close()
		return err
	}
	go m.Serve(ln)
	if _, err := fmt.Fprintln(stdout, self.String()); err != nil {
		return err
	}
	// Until stdin ends, each line "mem" asks for the child's memory (the
	// two-process idle experiment), answered with one JSON line, and each
	// line "gc" for a collection (quiet), unanswered.
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if sc.Text() == "gc" {
			runtime.GC()
			continue
		}
		if sc.Text() != "mem" {
			continue
		}
		settle(ctx)
		ms := sampleMem()
		js, _ := json.Marshal(childMem{Heap: ms.heap, Stacks: ms.stacks, RSS: ms.rss, Goroutines: ms.goroutines})
		if _, err := fmt.Fprintf(stdout, "%s\n", js); err != nil {
			return err
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := m.Shutdown(sctx); err != nil {
		return err
	}
	// Shutdown may have closed the listener already; a second close
	// says nothing about the run.
	ln.Close()
	return nil
}

// peerResolver resolves with a function, without DNS.
type peerResolver func(string) (netip.AddrPort, bool)

func (f peerResolver) Resolve(_ context.Context, d string) ([]resolver.Target, error) {
	a, ok := f(d)
	if !ok {
		return nil, fmt.Errorf("bench: %s: %w", d, resolver.ErrNotFound)
	}
	return []resolver.Target{{Host: d, Addr: a}}, nil
}

// childMem is a memSample on the wire from the child.
type childMem struct {
	Heap, Stacks, RSS uint64
	Goroutines        int
}

// childPeer is a running child process, as far as a load needs it.
type childPeer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader // the child's stdout, after its address
	addr  netip.AddrPort
	dir   string
	// errText holds the child's stderr when no writer was given for it.
	errText *strings.Builder
}

// startChildPeer writes the certificates of receiverDomain to a temporary
// directory and starts the child, routing the sending domains to parent.
func startChildPeer(ctx context.Context, e *env, tlsOn bool, parent netip.AddrPort, stderr io.Writer) (*childPeer, error) {
	if _, ok := os.LookupEnv(peerEnv); ok {
		// This process is itself a child whose main did not call
		// ServePeerIfChild: starting another would recurse without end.
		return nil, errors.New("bench: two-process run inside a child process: main must call bench.ServePeerIfChild")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-peer-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*childPeer, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	leaf, err := e.ca.Leaf(testcert.Options{DNSNames: []string{receiverDomain}})
	if err != nil {
		return fail(err)
	}
	spec := peerSpec{TLS: tlsOn, CA: filepath.Join(dir, "ca.pem"), Leaf: filepath.Join(dir, "leaf.pem"), Parent: parent.String()}
	if err := os.WriteFile(spec.CA, e.ca.PEM(), 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(spec.Leaf, leaf.PEM, 0o600); err != nil {
		return fail(err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return fail(err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), peerEnv+"="+string(js))
	// The child's complaints go to stderr if given, else are kept to
	// explain a child that fails to start.
	var errText strings.Builder
	if stderr == nil {
		stderr = &errText
	}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	c := &childPeer{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), dir: dir, errText: &errText}
	line, err := c.out.ReadString('\n')
	if err == nil {
		c.addr, err = netip.ParseAddrPort(strings.TrimSpace(line))
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("bench: child peer did not start: %w %s", err, strings.TrimSpace(errText.String()))
	}
	return c, nil
}

// gc asks the child for a collection (quiet). A failure to ask shows at
// the next mem.
func (c *childPeer) gc() { io.WriteString(c.stdin, "gc\n") }

// mem asks the child for its memory, once its goroutines have settled.
func (c *childPeer) mem() (memSample, error) {
	if _, err := io.WriteString(c.stdin, "mem\n"); err != nil {
		return memSample{}, fmt.Errorf("bench: child peer: %w", err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return memSample{}, fmt.Errorf("bench: child peer: %w %s", err, strings.TrimSpace(c.errText.String()))
	}
	var cm childMem
	if err := json.Unmarshal([]byte(line), &cm); err != nil {
		return memSample{}, fmt.Errorf("bench: child peer: %q: %w", line, err)
	}
	return memSample{heap: cm.Heap, stacks: cm.Stacks, rss: cm.RSS, goroutines: cm.Goroutines}, nil
}

// stop closes the child's stdin, which ends it, waits for it and removes
// its certificates.
func (c *childPeer) stop() error {
	c.stdin.Close()
	err := c.cmd.Wait()
	os.RemoveAll(c.dir)
	if err != nil {
		return fmt.Errorf("%w %s", err, strings.TrimSpace(c.errText.String()))
	}
	return nil
}
