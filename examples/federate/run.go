package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the demo ran and something did not arrive
	exitUsage  = 2 // bad flags or configuration: nothing was started
)

// shutdownGrace bounds the final Shutdown, which normally takes a round trip.
const shutdownGrace = 5 * time.Second

// options are the parsed flags.
type options struct {
	config  string
	cafile  string
	domains [2]string
	timeout time.Duration
	verbose bool
	// dialback turns SASL EXTERNAL off, so that links authenticate with
	// Server Dialback over the verified TLS streams.
	dialback bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("federate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "TOML `file` with the [s2s] section both domains use (default: built-in, required_trusted with a generated CA)")
	fs.StringVar(&o.cafile, "cafile", "", "PEM `file` of trusted roots for required_trusted with -config (default: system roots)")
	names := fs.String("domains", "a.example,b.example", "the two `domains`, comma-separated")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.BoolVar(&o.dialback, "dialback", false, "authenticate with Server Dialback only, not SASL EXTERNAL")
	fs.BoolVar(&o.verbose, "v", false, "log everything the Managers do to stderr, not only warnings")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: federate [-config file [-cafile file]] [-domains a,b] [-dialback] [-timeout d] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.cafile != "" && o.config == "" {
		return o, errors.New("-cafile needs -config: the built-in run trusts its own CA")
	}
	if o.timeout <= 0 {
		return o, errors.New("-timeout must be positive")
	}
	parts := strings.Split(*names, ",")
	if len(parts) != 2 {
		return o, fmt.Errorf("-domains %q: want two domains separated by a comma", *names)
	}
	for i, p := range parts {
		d, err := s2s.NormalizeDomain(strings.TrimSpace(p))
		if err != nil {
			return o, fmt.Errorf("-domains: %w", err)
		}
		o.domains[i] = d
	}
	if o.domains[0] == o.domains[1] {
		return o, fmt.Errorf("-domains: %s twice; a domain cannot federate with itself", o.domains[0])
	}
	return o, nil
}

// run is the whole program; main only wires it to the process. It returns
// the exit code.
func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "federate: %v\n", err)
		return exitUsage
	}
	t, err := setup(o)
	if err != nil {
		// config.Error already says file:line:column and the key.
		fmt.Fprintf(stderr, "federate: %v\n", err)
		return exitUsage
	}
	if t.dir != "" {
		defer os.RemoveAll(t.dir)
	}
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	if o.verbose {
		level.Set(slog.LevelInfo)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	p := &printer{w: stdout}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := demo(ctx, o, t, p, log, level); err != nil {
		fmt.Fprintf(stderr, "federate: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// trust is where the demo's options and certificates come from.
type trust struct {
	s2s       config.S2S
	more      [2]string      // each server's second domain; "": none
	certFiles [2]string      // per server; "": the section's certfile
	roots     *x509.CertPool // nil: system roots
	dir       string         // the built-in run's files, removed at the end
}

// setup builds the options and certificates, before anything listens. The
// built-in run sets trust up as an operator would, through public API only:
// PEM files on disk (writePKI), certfile naming each domain's, and the CA
// file loaded with starttls.LoadRoots.
func setup(o options) (trust, error) {
	var t trust
	if o.config != "" {
		s, err := config.Load(o.config)
		if err != nil {
			return t, err
		}
		// Both domains present the file's certificate: nothing else can
		// supply one.
		if err := s.CheckCertFile(); err != nil {
			return t, err
		}
		t.s2s = s
		if o.cafile != "" {
			if t.roots, err = starttls.LoadRoots(o.cafile); err != nil {
				return t, fmt.Errorf("-cafile: %w", err)
			}
		}
		return t, nil
	}
	dir, err := os.MkdirTemp("", "federate-")
	if err != nil {
		return t, err
	}
	t.dir = dir
	// Each server hosts a second domain, as hosting providers do, and
	// its certificate names both.
	t.more = [2]string{"chat." + o.domains[0], "chat." + o.domains[1]}
	p, err := writePKI(dir, o.domains, t.more)
	if err != nil {
		os.RemoveAll(dir)
		return t, fmt.Errorf("making the demo's certificates: %w", err)
	}
	t.s2s = config.Default()
	t.s2s.UseStartTLS = "required_trusted"
	t.certFiles = p.certFiles
	if t.roots, err = starttls.LoadRoots(p.caFile); err != nil {
		os.RemoveAll(dir)
		return t, err
	}
	return t, nil
}

// demo starts both domains, sends a message each way and shuts down. Any
// error says which step failed.
func demo(ctx context.Context, o options, t trust, p *printer, log *slog.Logger, level *slog.LevelVar) (err error) {
	var nodes [2]*node
	for i, d := range o.domains {
		n, err := listen(d)
		if err != nil {
			for _, m := range nodes[:i] {
				m.ln.Close()
			}
			return fmt.Errorf("listen for %s: %w", d, err)
		}
		n.more = t.more[i]
		nodes[i] = n
	}
	a, b := nodes[0], nodes[1]
	delivered := 0
	defer func() {
		// Whichever domain stops first closes streams that the other sees
		// as "the peer closed the stream", which the Manager logs as a
		// warning: expected here, so not shown unless -v asked for all.
		if level.Level() > slog.LevelInfo {
			level.Set(slog.LevelError)
		}
		// Shutdown gets its own bound: the demo's may be what ran out.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		for _, n := range nodes {
			if serr := n.stop(sctx); serr != nil && err == nil {
				err = fmt.Errorf("shutting %s down: %w", n.name, serr)
			}
		}
		if err == nil {
			p.printf("done: %d messages delivered, 0 bounced", delivered)
		}
	}()
	for i, n := range nodes {
		s := t.s2s.Clone()
		if t.certFiles[i] != "" {
			s.CertFile = t.certFiles[i]
		}
		err := n.start(nodeConfig{s2s: s, peer: nodes[1-i], roots: t.roots, print: p, log: log, dialbackOnly: o.dialback})
		if err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
	}
	p.printf("%s listen on %s, %s on %s (use_starttls = %q)", strings.Join(a.domains(), " and "), a.addr(), strings.Join(b.domains(), " and "), b.addr(), t.s2s.UseStartTLS)

	if err := exchange(ctx, p, a, b, a.name, b.name, "Hello from "+a.name); err != nil {
		return err
	}
	delivered++
	if err := exchange(ctx, p, b, a, b.name, a.name, "Hello back from "+b.name); err != nil {
		return err
	}
	delivered++
	// Every other combination of the servers' domains, each way: the new
	// pairs ride on the one connection (dialback piggybacking, XEP-0220).
	for _, dirs := range [][2]*node{{a, b}, {b, a}} {
		from, to := dirs[0], dirs[1]
		for _, fd := range from.domains() {
			for _, td := range to.domains() {
				if fd == from.name && td == to.name {
					continue
				}
				if err := exchange(ctx, p, from, to, fd, td, "Hello from "+fd); err != nil {
					return err
				}
				delivered++
			}
		}
	}
	p.printf("%s", connections(a, b))
	return nil
}

// connections says how many connections carry the two servers' links: the
// distinct LinkInfo.Stream of a's links, each of which carries at least
// one of them, and how many domain pairs they carry. With bidirectional
// streams (XEP-0288) and dialback piggybacking (XEP-0220), both on by
// default, that is one.
func connections(a, b *node) string {
	streams := map[uint64]bool{}
	pairs := map[[2]string]bool{}
	for _, l := range a.m.Links() {
		streams[l.Stream] = true
		pairs[[2]string{l.Local, l.Remote}] = true
	}
	what := fmt.Sprintf("%d domain pairs", len(pairs))
	if len(pairs) == 1 {
		what = "1 domain pair"
	}
	if len(streams) == 1 {
		return fmt.Sprintf("connections: 1 between %s and %s, carrying both directions of %s", a.name, b.name, what)
	}
	return fmt.Sprintf("connections: %d between %s and %s, for %s", len(streams), a.name, b.name, what)
}

// exchange sends one message from a user of domain fd, hosted by from, to
// a user of domain td, hosted by to, and waits until it is delivered there.
func exchange(ctx context.Context, p *printer, from, to *node, fd, td, text string) error {
	id := fd + ">" + td
	var raw strings.Builder
	fmt.Fprintf(&raw, "<message from='alice@%s/demo' to='bob@%s' id='%s' type='chat'><body>", fd, td, id)
	xmlEscape(&raw, text)
	raw.WriteString("</body></message>")
	if err := from.m.Send(ctx, []byte(raw.String())); err != nil {
		return fmt.Errorf("send %s -> %s: %w", fd, td, err)
	}
	select {
	case s := <-to.delivered:
		if s.ID != id || s.Name != "message" {
			return fmt.Errorf("%s received %s id=%q, want the message %q", td, s.Name, s.ID, id)
		}
		p.printf("message    %s -> %s  delivered: %q", fd, td, body(s.Raw))
		return nil
	case b := <-from.bounced:
		return fmt.Errorf("message %s -> %s bounced: %s: %s", fd, td, b.Condition, b.Text)
	case <-ctx.Done():
		return fmt.Errorf("message %s -> %s not delivered: %w", fd, td, context.Cause(ctx))
	}
}
