package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// Config says how much load each experiment puts on and how often it runs.
// The zero value is not useful; start from Default or Quick.
type Config struct {
	// Runs is how many times each measurement is taken; the table holds
	// the median.
	Runs int
	// Messages is the number of messages per throughput run, and
	// MessageWindow how many may be undelivered at once.
	Messages, MessageWindow int
	// Pings is the number of round trips per ping run, for each window.
	Pings   int
	Windows []int
	// FirstStanza is the number of new links whose first stanza is timed;
	// with TLS, that many first contacts and as many repeated links.
	FirstStanza int
	// IdleLinks are the link counts of the idle-memory experiment.
	IdleLinks []int
	// IdleWait is how long the idle links stay idle before they are
	// measured (see quiet); 0 measures them at once.
	IdleWait time.Duration
	// TLS lists the modes to run: true for STARTTLS (TLS 1.3), false for
	// plain TCP.
	TLS []bool
	// Progress, if set, receives a line per finished measurement.
	Progress io.Writer
	// WhileIdle, if set, is called while the links of each idle-memory
	// experiment are up and settled (for a heap profile of them).
	WhileIdle func(links int, tls bool)

	// TwoProcess runs the message and ping experiments of ours a second
	// time with the receiving Manager in a child process: the running
	// executable started again, whose main must call ServePeerIfChild
	// first. It fills Row.TwoProc.
	TwoProcess bool

	// Peers runs the message and ping experiments against Prosody and
	// ejabberd as well (interop's harness; both must be installed, and
	// ejabberd needs root), with PeerMessages messages and PeerPings pings
	// per run: fewer than ours, since the peers are slower and the median
	// needs several runs. PeerLog, if set, receives the harness's messages
	// about the peers.
	Peers                   bool
	PeerMessages, PeerPings int
	PeerLog                 io.Writer
}

// Default is the configuration BENCHMARKS.md reports.
func Default() Config {
	return Config{
		Runs: 5, Messages: 200_000, MessageWindow: 10_000,
		Pings: 100_000, Windows: []int{100, 1000},
		FirstStanza: 11, IdleLinks: []int{1000}, IdleWait: 5 * time.Second,
		TLS:          []bool{true, false},
		TwoProcess:   true,
		PeerMessages: 50_000, PeerPings: 20_000,
	}
}

// Quick is a run of a few hundred stanzas that checks every experiment
// completes; its numbers mean nothing.
func Quick() Config {
	return Config{
		Runs: 1, Messages: 300, MessageWindow: 100,
		Pings: 200, Windows: []int{100},
		FirstStanza: 1, IdleLinks: []int{20},
		TLS:          []bool{true, false},
		TwoProcess:   true,
		PeerMessages: 2000, PeerPings: 200,
	}
}

// Run runs every experiment of c and returns the table.
func Run(ctx context.Context, c Config) (Report, error) {
	e, err := newEnv()
	if err != nil {
		return Report{}, err
	}
	var rep Report
	add := func(r Row) {
		rep.Rows = append(rep.Rows, r)
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "%s: ours %s, raw %s %s\n", r.Name, num(r.Ours), num(r.Raw), r.Unit)
		}
	}
	for _, tlsOn := range c.TLS {
		rows, err := throughput(ctx, e, c, tlsOn)
		if err == nil && c.TwoProcess {
			err = twoProcess(ctx, e, c, tlsOn, rows)
		}
		if err == nil && c.Peers {
			err = peerColumns(ctx, e, c, tlsOn, rows)
		}
		for _, r := range rows {
			add(r)
		}
		if err != nil {
			return rep, err
		}
	}
	for _, tlsOn := range c.TLS {
		rows, err := latency(ctx, e, c, tlsOn)
		for _, r := range rows {
			add(r)
		}
		if err != nil {
			return rep, err
		}
	}
	for _, tlsOn := range c.TLS {
		for _, n := range c.IdleLinks {
			rows, notes, err := idle(ctx, e, c, tlsOn, n)
			for _, r := range rows {
				add(r)
			}
			rep.Notes = append(rep.Notes, notes...)
			if err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func tlsName(on bool) string {
	if on {
		return "TLS"
	}
	return "TCP"
}

var nan = math.NaN()

// throughput measures messages and pings on one link per mode.
func throughput(ctx context.Context, e *env, c Config, tlsOn bool) ([]Row, error) {
	p, err := newLibPair(e.ca, tlsOn)
	if err != nil {
		return nil, err
	}
	defer p.close()
	msg := messageFor(senderDomain(0))
	var ours, raw, allocs []float64
	for range c.Runs {
		d, a, err := p.messages(ctx, c.Messages, c.MessageWindow)
		if err != nil {
			return nil, fmt.Errorf("messages over %s: %w", tlsName(tlsOn), err)
		}
		ours = append(ours, float64(c.Messages)/d.Seconds())
		allocs = append(allocs, a)
		d, err = rawMessages(ctx, e, tlsOn, c.Messages, msg)
		if err != nil {
			return nil, fmt.Errorf("raw messages over %s: %w", tlsName(tlsOn), err)
		}
		raw = append(raw, float64(c.Messages)/d.Seconds())
	}
	rows := []Row{
		{Name: "messages, one link, " + tlsName(tlsOn), Unit: "stanzas/s", HigherBetter: true, Ours: median(ours), Raw: median(raw), TwoProc: nan, Prosody: nan, Ejabberd: nan},
		{Name: "allocations per message (both ends), " + tlsName(tlsOn), Unit: "allocs", Ours: median(allocs), Raw: nan, TwoProc: nan, Prosody: nan, Ejabberd: nan},
	}
	ping, result := pingFor(senderDomain(0))
	var hostRows []Row
	for _, w := range c.Windows {
		var ours, host, raw []float64
		for range c.Runs {
			d, err := p.pings(ctx, c.Pings, w)
			if err != nil {
				return rows, fmt.Errorf("pings over %s: %w", tlsName(tlsOn), err)
			}
			ours = append(ours, float64(c.Pings)/d.Seconds())
			if d, err = p.hostPings(ctx, tlsOn, c.Pings, w); err != nil {
				return rows, fmt.Errorf("pings to one Manager over %s: %w", tlsName(tlsOn), err)
			}
			host = append(host, float64(c.Pings)/d.Seconds())
			d, err = rawPings(ctx, e, tlsOn, c.Pings, w, ping, result)
			if err != nil {
				return rows, fmt.Errorf("raw pings over %s: %w", tlsName(tlsOn), err)
			}
			raw = append(raw, float64(c.Pings)/d.Seconds())
		}
		rows = append(rows, Row{Name: "pings, window " + strconv.Itoa(w) + ", " + tlsName(tlsOn), Unit: "round trips/s",
			HigherBetter: true, Ours: median(ours), Raw: median(raw), TwoProc: nan, Prosody: nan, Ejabberd: nan})
		hostRows = append(hostRows, Row{Name: "pings to one Manager from the raw load generator, window " + strconv.Itoa(w) + ", " + tlsName(tlsOn),
			Unit: "round trips/s", HigherBetter: true, Ours: median(host), Raw: median(raw), TwoProc: nan, Prosody: nan, Ejabberd: nan})
	}
	// The host rows come after all the rows of two Managers, with which
	// the two-process and peer columns line up.
	return append(rows, hostRows...), nil
}

// latency times the first stanza on new links. With TLS it times two
// kinds, alternated: a first contact, whose sending side presents a
// certificate no earlier link did (a full handshake, against a raw full
// handshake), and a repeated link, which presents the certificate of an
// earlier link and resumes its TLS session (against a raw connection that
// resumes too). Each link's kind is checked, not assumed.
func latency(ctx context.Context, e *env, c Config, tlsOn bool) ([]Row, error) {
	p, err := newLibPair(e.ca, tlsOn)
	if err != nil {
		return nil, err
	}
	defer p.close()
	domain := 0
	next := func() int { domain++; return domain }
	type figures struct{ ms, raw, rtA, rtB []float64 }
	// link times one new link of ours and one raw connection.
	link := func(f *figures, resume bool, rs *rawSessions) error {
		i := next()
		d, a, b, err := p.firstStanza(ctx, i)
		if err != nil {
			return fmt.Errorf("first stanza over %s: %w", tlsName(tlsOn), err)
		}
		if tlsOn {
			if got, err := p.resumed(i); err != nil {
				return err
			} else if got != resume {
				return fmt.Errorf("bench: new link %d resumed its TLS session: %v, want %v", i, got, resume)
			}
		}
		f.ms = append(f.ms, float64(d)/float64(time.Millisecond))
		if d, err = rawFirstStanza(e, tlsOn, messageFor(senderDomain(i)), rs); err != nil {
			return fmt.Errorf("raw first stanza over %s: %w", tlsName(tlsOn), err)
		}
		f.raw = append(f.raw, float64(d)/float64(time.Millisecond))
		f.rtA = append(f.rtA, float64(a))
		f.rtB = append(f.rtB, float64(b))
		return nil
	}
	row := func(name, unit string, ours, raw []float64) Row {
		r := Row{Name: name, Unit: unit, Ours: median(ours), Raw: nan, TwoProc: nan, Prosody: nan, Ejabberd: nan}
		if raw != nil {
			r.Raw = median(raw)
		}
		return r
	}
	var first, again figures
	if !tlsOn {
		for range c.FirstStanza {
			if err := link(&first, false, nil); err != nil {
				return nil, err
			}
		}
		return []Row{
			row("first stanza on a new link, TCP", "ms", first.ms, first.raw),
			row("round trips of the new link, TCP", "round trips", first.rtA, nil),
			row("round trips of the verification stream, TCP", "round trips", first.rtB, nil),
		}, nil
	}
	// The certificates of the first contacts are made before the clock
	// runs; the repeated links present the pair's own, whose session the
	// first link below makes (and a raw connection the raw one's).
	warm := p.certA.Load()
	fresh := make([]*testcert.Leaf, c.FirstStanza)
	for k := range fresh {
		if fresh[k], err = e.ca.Leaf(testcert.Options{DNSNames: []string{"*." + senderZone}}); err != nil {
			return nil, err
		}
	}
	var discard figures
	rs := &rawSessions{}
	if err := link(&discard, false, rs); err != nil {
		return nil, err
	}
	for k := range c.FirstStanza {
		p.presentAs(fresh[k])
		if err := link(&first, false, nil); err != nil {
			return nil, err
		}
		p.certA.Store(warm)
		if err := link(&again, true, rs); err != nil {
			return nil, err
		}
	}
	return []Row{
		row("first stanza on a new link, TLS, first contact (full handshake)", "ms", first.ms, first.raw),
		row("round trips of the new link, TLS, first contact", "round trips", first.rtA, nil),
		row("first stanza on a new link, TLS, repeated (resumed session)", "ms", again.ms, again.raw),
		row("round trips of the new link, TLS, repeated", "round trips", again.rtA, nil),
		row("round trips of the verification stream, TLS", "round trips", append(first.rtB, again.rtB...), nil),
	}, nil
}

// idle brings n links up and measures what they hold while idle, against
// n raw connections with a reading goroutine per end, and with the
// receiving Manager in a child process when c.TwoProcess. Each
// measurement that would hold more descriptors than one process may open
// is left out with a note: in one process a link costs two, one per end.
func idle(ctx context.Context, e *env, c Config, tlsOn bool, n int) ([]Row, []string, error) {
	name := fmt.Sprintf("%d idle links, %s", n, tlsName(tlsOn))
	limit := fileLimit()
	var notes []string
	fits := func(conns int) bool { return limit <= 0 || conns+fdMargin <= limit }
	ours, raw, two := nanFigures(), nanFigures(), nanFigures()
	if fits(2 * n) {
		var err error
		if ours, err = idleInProcess(ctx, e, c, tlsOn, n); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if raw, err = idleRaw(ctx, e, tlsOn, n); err != nil {
			return nil, nil, fmt.Errorf("%s, raw: %w", name, err)
		}
	} else {
		notes = append(notes, fmt.Sprintf("%s: in one process both ends of %d links need %d descriptors, over the open-file limit of %d (less %d for the rest): only the two-process figures are given.",
			name, n, 2*n, limit, fdMargin))
	}
	if c.TwoProcess {
		if !fits(n) {
			notes = append(notes, fmt.Sprintf("%s: %d links are over the open-file limit of %d even with one end per process.", name, n, limit))
		} else {
			var err error
			if two, err = idleTwoProcess(ctx, e, tlsOn, n, c.IdleWait); err != nil {
				return nil, notes, fmt.Errorf("%s, two processes: %w", name, err)
			}
		}
	}
	return []Row{
		{Name: name + ": heap and stacks per link end", Unit: "KiB", Ours: ours.heap / 1024, Raw: raw.heap / 1024, TwoProc: two.heap / 1024, Prosody: nan, Ejabberd: nan},
		{Name: name + ": of which goroutine stacks", Unit: "KiB", Ours: ours.stacks / 1024, Raw: raw.stacks / 1024, TwoProc: two.stacks / 1024, Prosody: nan, Ejabberd: nan},
		{Name: name + ": RSS per link end", Unit: "KiB", Ours: ours.rss / 1024, Raw: raw.rss / 1024, TwoProc: two.rss / 1024, Prosody: nan, Ejabberd: nan},
		{Name: name + ": goroutines per link (both ends)", Unit: "goroutines", Ours: ours.goroutines, Raw: raw.goroutines, TwoProc: two.goroutines, Prosody: nan, Ejabberd: nan},
		{Name: name + ": time to bring them up", Unit: "s", Ours: ours.setup, Raw: nan, TwoProc: two.setup, Prosody: nan, Ejabberd: nan},
	}, notes, nil
}

// fileLimit is openFileLimit, replaced in tests.
var fileLimit = openFileLimit

// fdMargin is what a process keeps open besides the links' connections:
// listeners, pipes, the poller, the runtime's own.
const fdMargin = 100

// idleFigures are an idle experiment's results: memory per link end,
// goroutines per link (both ends), set-up in seconds.
type idleFigures struct {
	heap, stacks, rss, goroutines, setup float64
}

func nanFigures() idleFigures { return idleFigures{nan, nan, nan, nan, nan} }

// idleInProcess is the experiment with both Managers in this process.
func idleInProcess(ctx context.Context, e *env, c Config, tlsOn bool, n int) (idleFigures, error) {
	p, err := newLibPair(e.ca, tlsOn)
	if err != nil {
		return idleFigures{}, err
	}
	defer p.close()
	// One link first, so that what every Manager allocates once (pools,
	// the certificate's parsed form) is not charged to the links.
	if _, err := p.idleLinks(ctx, 0, 1); err != nil {
		return idleFigures{}, err
	}
	settle(ctx)
	before := sampleMem()
	d, err := p.idleLinks(ctx, 1, n)
	if err != nil {
		return idleFigures{}, err
	}
	settle(ctx)
	quiet(ctx, c.IdleWait, nil)
	after := sampleMem()
	if c.WhileIdle != nil {
		c.WhileIdle(n, tlsOn)
	}
	heap, stacks, rssPer := perEnd(before, after, 2*n)
	gor := float64(after.goroutines-before.goroutines) / float64(n)
	return idleFigures{heap, stacks, rssPer, gor, d.Seconds()}, nil
}

// idleRaw is the bare connections' figure, taken once the Managers of
// idleInProcess are gone (so that the two never hold descriptors at once).
func idleRaw(ctx context.Context, e *env, tlsOn bool, n int) (idleFigures, error) {
	settle(ctx)
	rb := sampleMem()
	closeRaw, err := rawIdle(e, tlsOn, n)
	if err != nil {
		return idleFigures{}, err
	}
	settle(ctx)
	ra := sampleMem()
	closeRaw()
	heap, stacks, rssPer := perEnd(rb, ra, 2*n)
	return idleFigures{heap, stacks, rssPer, 2, nan}, nil
}
