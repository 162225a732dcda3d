package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/diagnose"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/metrics"
	"github.com/xmpp-s2s/federation/s2s/status"
	"github.com/xmpp-s2s/federation/starttls"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the listener could not be opened or failed
	exitUsage  = 2 // bad flags or configuration: nothing was started
)

// options are the parsed flags.
type options struct {
	config   string
	domains  []string // normalised
	listen   string
	echo     bool
	cafile   string
	peers    []config.Address // -peer, in order
	shutdown time.Duration
	verbose  bool
	http     string
	perAddr  int // s2s.Config.MaxPerAddress; 0: no bound
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("stub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "TOML `file` with the [s2s] options (default: every option at its default)")
	names := fs.String("domain", "", "the local `domains` to serve, comma-separated (required)")
	fs.StringVar(&o.listen, "listen", "", "`address` to accept s2s streams on, such as 127.0.0.1:5269 (required)")
	fs.BoolVar(&o.echo, "echo", false, "send each message back with from and to swapped")
	fs.StringVar(&o.cafile, "cafile", "", "PEM `file` of roots trusted for required_trusted (default: system roots)")
	fs.Func("peer", "reach `DOMAIN=IP:PORT` at that address, skipping DNS (repeatable; overrides the config's address option)", func(v string) error {
		a, err := parsePeer(v)
		if err == nil {
			o.peers = append(o.peers, a)
		}
		return err
	})
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 10*time.Second, "how long a signal waits for queues to drain")
	fs.BoolVar(&o.verbose, "v", false, "log everything to stderr, not only warnings")
	fs.StringVar(&o.http, "http", "", "`address` to serve the status page on (/, /diagnose and /metrics), such as 127.0.0.1:8080")
	fs.IntVar(&o.perAddr, "max-per-address", 0, "bound the incoming streams from one address for one domain pair to `n` (default: no bound)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: stub [-config file] -domain d[,d...] -listen addr [-peer domain=ip:port ...] [-echo] [-cafile file] [-shutdown-timeout d] [-http addr] [-max-per-address n] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *names == "" {
		return o, errors.New("-domain is required")
	}
	if o.listen == "" {
		return o, errors.New("-listen is required")
	}
	if o.shutdown <= 0 {
		return o, errors.New("-shutdown-timeout must be positive")
	}
	if o.perAddr < 0 {
		return o, errors.New("-max-per-address must be positive, or 0 for no bound")
	}
	for _, n := range strings.Split(*names, ",") {
		d, err := domain.Normalize(strings.TrimSpace(n))
		if err != nil {
			return o, fmt.Errorf("-domain: %w", err)
		}
		o.domains = append(o.domains, d)
	}
	return o, nil
}

// loadConfig reads the options and the trusted roots.
func loadConfig(o options) (config.S2S, *x509.CertPool, error) {
	s := config.Default()
	if o.config != "" {
		var err error
		if s, err = config.Load(o.config); err != nil {
			return s, nil, err
		}
		// The stub's certificate can only come from the file.
		if err := s.CheckCertFile(); err != nil {
			return s, nil, err
		}
	}
	for _, a := range o.peers {
		s.Address = withPeer(s.Address, a)
	}
	if o.cafile == "" {
		return s, nil, nil
	}
	roots, err := starttls.LoadRoots(o.cafile)
	if err != nil {
		return s, nil, fmt.Errorf("-cafile: %w", err)
	}
	return s, roots, nil
}

// run is the whole program; main only wires it to the process. It serves
// until ctx ends (main ends it on SIGINT and SIGTERM), then shuts down
// gracefully, and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "stub: %v\n", err)
		return exitUsage
	}
	opts, roots, err := loadConfig(o)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			// Positioned as file:line:column: key: message, which editors
			// and CI logs know how to jump to: print it bare.
			fmt.Fprintln(stderr, ce)
		} else {
			fmt.Fprintf(stderr, "stub: %v\n", err)
		}
		return exitUsage
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ev := newEvents(stdout)
	// Every line emitted is on stdout before the process exits.
	defer ev.close()

	local := make(map[string]bool, len(o.domains))
	for _, d := range o.domains {
		local[d] = true
	}
	// The status page and the metrics see every event from the first.
	col := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	page := status.New(status.Options{
		Locals:  o.domains,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Diagnose: func(ctx context.Context, from, to string) (*diagnose.Report, error) {
			return diagnose.Run(ctx, diagnose.Config{S2S: opts, RootCAs: roots}, from, to)
		},
	})
	observe := func(e s2s.Event) {
		ev.observe(e)
		col.Observe(e)
		page.Observe(e)
	}
	// Every peer of a stub on loopback comes from 127.0.0.1: a per-address
	// bound would refuse a test suite's links, not an attacker.
	perAddr := o.perAddr
	if perAddr == 0 {
		perAddr = -1
	}
	// Deliver needs the Manager to answer; it is set before Serve starts
	// the first stream.
	var m *s2s.Manager
	m, err = s2s.New(s2s.Config{
		S2S:     opts,
		IsLocal: func(d string) bool { return local[d] },
		Deliver: func(s s2s.Stanza) {
			ev.stanza(s)
			reply, err := answer(s, o.echo)
			if err != nil {
				log.Warn("stub: cannot answer a stanza", "from", s.From, "to", s.To, "id", s.ID, "err", err)
				return
			}
			if reply == nil {
				return
			}
			// Send only queues: this does not hold up the stream that
			// delivered s. What cannot be sent comes back as a bounce.
			if err := m.Send(context.Background(), reply); err != nil && !errors.Is(err, s2s.ErrClosed) {
				log.Warn("stub: cannot send an answer", "to", s.From, "id", s.ID, "err", err)
			}
		},
		Bounce:   ev.bounce,
		Observer: observe,
		Logger:   log,
		RootCAs:  roots,

		MaxPerAddress: perAddr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "stub: %v\n", err)
		return exitUsage
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		m.Close()
		fmt.Fprintf(stderr, "stub: %v\n", err)
		return exitFailed
	}
	col.Attach(m.Links)
	page.Attach(m.Links)
	var web *http.Server
	if o.http != "" {
		hl, err := net.Listen("tcp", o.http)
		if err != nil {
			ln.Close()
			m.Close()
			fmt.Fprintf(stderr, "stub: -http: %v\n", err)
			return exitFailed
		}
		web = &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second}
		go web.Serve(hl)
		ev.emit(event{Event: evHTTP, Addr: hl.Addr().String()})
	}
	ev.emit(event{Event: evListening, Addr: ln.Addr().String(), Domains: o.domains})
	served := make(chan error, 1)
	go func() { served <- m.Serve(ln) }()

	lines := make(chan []byte)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(stdin, lines, stop)

	code := exitOK
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				lines = nil // stdin ended; serve on
				continue
			}
			if rest, ok := controlLine(line, "peer"); ok {
				// Peers learnt at run time: two stubs on port 0 each tell
				// the other where they listen once both have started.
				a, err := parsePeer(rest)
				if err == nil {
					opts.Address = withPeer(opts.Address, a)
					err = m.Reload(opts)
				}
				if err != nil {
					ev.emit(event{Event: evError, Op: "peer", Error: err.Error(), XML: string(line)})
					continue
				}
				ev.emit(event{Event: evPeer, Remote: a.Host, Addr: netip.AddrPortFrom(a.IP, uint16(a.Port)).String()})
				continue
			}
			if err := m.Send(ctx, line); err != nil {
				ev.sendFailed(line, err)
			}
		case err := <-served:
			ev.emit(event{Event: evError, Op: "serve", Error: err.Error()})
			fmt.Fprintf(stderr, "stub: %v\n", err)
			served = nil
			code = exitFailed
			break loop
		case <-ctx.Done():
			break loop
		}
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdown)
	defer cancel()
	if web != nil {
		web.Shutdown(sctx)
	}
	if err := m.Shutdown(sctx); err != nil {
		// Whatever was still queued has been reported as bounces.
		log.Warn("stub: queues did not drain in time", "timeout", o.shutdown, "err", err)
	}
	if served != nil {
		<-served
	}
	return code
}

// parsePeer reads DOMAIN=IP:PORT, as -peer and the peer control line take
// it.
func parsePeer(v string) (config.Address, error) {
	name, addr, ok := strings.Cut(v, "=")
	if !ok {
		return config.Address{}, fmt.Errorf("%q: want DOMAIN=IP:PORT", v)
	}
	d, err := domain.Normalize(strings.TrimSpace(name))
	if err != nil {
		return config.Address{}, fmt.Errorf("%q: %w", v, err)
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(addr))
	if err != nil || ap.Port() == 0 {
		return config.Address{}, fmt.Errorf("%q: want DOMAIN=IP:PORT with an IP address and a port other than 0", v)
	}
	return config.Address{Host: d, IP: ap.Addr().Unmap(), Port: int(ap.Port())}, nil
}

// withPeer returns addrs with a's entry added or replaced: hosts in the
// address option are unique.
func withPeer(addrs []config.Address, a config.Address) []config.Address {
	out := make([]config.Address, 0, len(addrs)+1)
	for _, x := range addrs {
		if x.Host != a.Host {
			out = append(out, x)
		}
	}
	return append(out, a)
}

// controlLine reports whether a stdin line is the command word followed by
// a space, and returns the rest. Stanzas start with '<', so no stanza is
// taken for a command.
func controlLine(line []byte, word string) (string, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(word+" "))
	return strings.TrimSpace(string(rest)), ok
}

// readLines sends each non-blank line of r to lines, and closes lines at
// the end of r. Reading stdin cannot be interrupted, so this goroutine may
// outlive run; stop makes sure it never hands run another line after that.
func readLines(r io.Reader, lines chan<- []byte, stop <-chan struct{}) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			select {
			case lines <- line:
			case <-stop:
				return
			}
		}
		if err != nil {
			close(lines)
			return
		}
	}
}
