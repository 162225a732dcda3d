package s2s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// Errors returned by the Manager's methods.
var (
	// ErrClosed is returned by Serve and Send once Shutdown or Close began.
	ErrClosed = errors.New("s2s: manager closed")
	// ErrNotStanza wraps the reason Send refused bytes that are not one
	// message, presence or iq element; such bytes are not bounced, since
	// there is no envelope to bounce them to.
	ErrNotStanza = errors.New("s2s: not a stanza")
)

// pair is a (local, remote) domain pair, both lower-case A-labels.
type pair struct{ local, remote string }

// Manager is the s2s layer a host server embeds: it opens, authenticates and
// keeps outgoing links, accepts incoming streams, and moves stanzas between
// them and the host's callbacks. Create one with New. A Manager is safe for
// concurrent use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	clock  clock
	st     atomic.Pointer[settings]
	limits wire.Limits

	// ctx ends when the Manager closes; every goroutine of the Manager
	// watches it.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// stopping is set when Shutdown begins: Send bounces and no new
	// outgoing attempt starts, but incoming streams are still served so
	// that peers can verify the dialback keys of the links being drained.
	stopping bool
	// closing is set once the outgoing links are drained: listeners close
	// and incoming streams end.
	closing bool
	outWG   sync.WaitGroup // the goroutines of outgoing links
	out     map[pair]*outLink
	// lastOut is the link the last Send went to, for the next Send of the
	// same pair (SendStanza); stopped is stopping, for it, without m.mu.
	lastOut atomic.Pointer[outLink]
	stopped atomic.Bool
	in      map[*inStream]struct{}
	// bidiIn indexes the incoming bidi streams by the pairs of ours they
	// may carry (the reverse of each pair authenticated on them), for
	// bidiRoute (bidi.go).
	bidiIn    map[pair][]*inStream
	listeners map[net.Listener]struct{}
	wg        sync.WaitGroup
	addrs     addrCount     // incoming connections per remote address
	verif     verifications // dialback verifications in flight, recent failures

	bounces *bouncer  // runs the Bounce callback off the callers' goroutines
	endOnce sync.Once // Shutdown starts the wait that ends bounces once

	cluster *cluster // nil without Config.Cluster

	streamIDs atomic.Uint64 // the last LinkInfo.Stream given out
	// streams are our up outgoing streams, for piggybacking (piggyback.go).
	streams map[*outConn]struct{}
	seq     atomic.Uint64 // the last Stanza.seq given out (requeue.go)

	// sweepTimer is the next park sweep, while there are streams
	// (park.go); sweepIn and sweepOut are the sweep's lists, kept.
	sweepTimer timer
	sweepIn    []*inStream
	sweepOut   []*outConn
}

// New returns a Manager for c. It loads the certificate and builds the
// resolver and policy the options describe; it opens no connection.
func New(c Config) (*Manager, error) {
	if c.IsLocal == nil || c.Deliver == nil || c.Bounce == nil {
		return nil, fmt.Errorf("%w: IsLocal, Deliver and Bounce are required", ErrConfig)
	}
	if c.S2S.DefaultPolicy == "" && c.S2S.UseStartTLS == "" {
		return nil, fmt.Errorf("%w: S2S is the zero value; start from config.Default()", ErrConfig)
	}
	if c.QueueLength <= 0 {
		c.QueueLength = DefaultQueueLength
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.NegotiationTimeout <= 0 {
		c.NegotiationTimeout = DefaultNegotiationTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	c.setLimitDefaults()
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	m := &Manager{
		cfg:       c,
		log:       c.Logger,
		clock:     c.clock,
		out:       make(map[pair]*outLink),
		in:        make(map[*inStream]struct{}),
		bidiIn:    make(map[pair][]*inStream),
		listeners: make(map[net.Listener]struct{}),
	}
	m.bounces = newBouncer(m)
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	// What an outgoing stream's peer may make our reader hold; incoming
	// streams take max_stanza_size from the settings (inLimits).
	m.limits = wire.DefaultLimits
	m.limits.MaxDepth = c.MaxDepth
	st, err := c.newSettings(c.S2S, nil)
	if err != nil {
		return nil, err
	}
	m.st.Store(st)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if c.Cluster != nil {
		if m.cluster, err = newCluster(m, *c.Cluster); err != nil {
			m.cancel()
			return nil, err
		}
		go m.cluster.run(m.ctx)
	}
	return m, nil
}

func (m *Manager) settings() *settings { return m.st.Load() }

// Send routes a stanza to the remote domain of its 'to' attribute.
//
// raw must be one message, presence or iq element with 'from' naming a local
// domain and 'to' a remote one; a top-level xmlns='jabber:client' is
// rewritten to jabber:server. When raw is not such a stanza, Send returns an
// error wrapping ErrNotStanza and the stanza stays the caller's. Otherwise
// Send returns nil and the stanza is, exactly once, either written to an
// authenticated stream or handed to the Bounce callback (never on the
// caller's goroutine; see Config.Bounce) — with one exception: a stanza of type 'error' that cannot be sent
// is dropped and logged, never bounced, so that errors cannot loop.
//
// Send does not block on the network: the stanza waits in the link's queue
// while the link connects. ctx is checked before the stanza is accepted.
func (m *Manager) Send(ctx context.Context, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var s Stanza
	if err := parseStanza(raw, &s); err != nil {
		return err // wraps ErrNotStanza already
	}
	return m.SendStanza(ctx, s)
}

// SendStanza is Send for a stanza whose envelope the host already parsed (with
// ParseStanza, or from a Deliver callback). s.Raw must be what ParseStanza
// would accept; it is written as it is.
func (m *Manager) SendStanza(ctx context.Context, s Stanza) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.From == "" || s.To == "" {
		return fmt.Errorf("%w: a stanza between servers needs both 'from' and 'to'", ErrNotStanza)
	}
	local, remote := domainpart(s.From), domainpart(s.To)
	// last is the link the last Send went to; onLast says the stanza's
	// pair is its pair.
	last := m.lastOut.Load()
	onLast := last != nil && last.pair.local == local && last.pair.remote == remote
	if onLast {
		// Written as the last link's key, the two are in normal form
		// already (a normal form is its own), and checking them again
		// was two of the domain checks of a Send. The key's own strings
		// from here on, as the link's pair is.
		local, remote = last.pair.local, last.pair.remote
	} else {
		var err error
		if local, err = domain.Normalize(local); err != nil {
			return fmt.Errorf("%w: from: %w", ErrNotStanza, err)
		}
		if remote, err = domain.Normalize(remote); err != nil {
			return fmt.Errorf("%w: to: %w", ErrNotStanza, err)
		}
		onLast = last != nil && last.pair.local == local && last.pair.remote == remote
	}
	if !m.cfg.IsLocal(local) {
		m.bounce(s, stanza.NotAllowed, fmt.Sprintf("%s is not a local domain", local), nil)
		return nil
	}
	if m.cfg.IsLocal(remote) {
		m.bounce(s, stanza.ServiceUnavailable, fmt.Sprintf("%s is a local domain; the host routes it, not s2s", remote), nil)
		return nil
	}
	st := m.settings()
	p := pair{local, remote}
	if onLast && last.allowedBy.Load() == st && !m.stopped.Load() {
		// The link the last Send found, allowed by these settings: no
		// lock of the Manager and no map lookup per stanza (with the
		// pair's two strings hashed, 2% of the ping path). A link
		// retired meanwhile refuses the stanza, and the lookup below
		// finds its successor.
		if last.enqueue(s) {
			return nil
		}
	}
	asked := false
	for {
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			m.bounce(s, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
			return nil
		}
		l := m.out[p]
		if !asked && (l == nil || l.allowedBy.Load() != st) {
			// The policy is asked once per link and settings, not per
			// stanza (it was 2% of the ping path, the Table normalising
			// the host again each time): for a new link, and for a
			// link's first stanza after Reload replaced the settings
			// (Reload asks again for the live links and closes those
			// the new answer denies). With no lock held: a host's
			// Policy may block.
			m.mu.Unlock()
			if d := st.policy.Decide(ctx, remote); !d.Allowed() {
				m.bounce(s, stanza.PolicyViolation, fmt.Sprintf("federation with %s is not allowed (%s)", remote, d),
					&StepError{Step: StepPolicy, Err: fmt.Errorf("%w: %s", ErrDenied, d)})
				return nil
			}
			asked = true
			continue
		}
		if l == nil && m.cluster != nil {
			if node := m.cluster.owner(p); node != "" {
				// Another node of the cluster holds this pair's link, as
				// last heard. When it cannot be reached, look again: the
				// Registry may say it is gone.
				m.mu.Unlock()
				if m.cluster.tryForward(ctx, p, node, s) {
					return nil
				}
				continue
			}
		}
		if l == nil {
			l = newOutLink(m, p)
			m.out[p] = l
		}
		m.mu.Unlock()
		if asked {
			l.allowedBy.Store(st)
		}
		if m.lastOut.Load() != l {
			m.lastOut.Store(l)
		}
		if l.enqueue(s) {
			return nil
		}
		// The link was retired between the lookup and enqueue: look again,
		// without it.
		m.dropOut(l)
	}
}

// bounce hands a stanza back to the host, or drops an error stanza.
func (m *Manager) bounce(s Stanza, cond stanza.Condition, text string, cause error) {
	if s.Type == "error" {
		m.log.Warn("s2s: dropped an error stanza that could not be sent",
			"from", s.From, "to", s.To, "id", s.ID, "condition", string(cond), "reason", text)
		return
	}
	m.bounces.add(Bounce{Stanza: s, Condition: cond, Text: text, Err: cause})
}

func (m *Manager) bounceAll(q []Stanza, cond stanza.Condition, text string, cause error) {
	for _, s := range q {
		m.bounce(s, cond, text, cause)
	}
}

func (m *Manager) observe(e Event) {
	if m.cluster != nil {
		m.cluster.event(e)
	}
	if m.cfg.Observer != nil {
		m.cfg.Observer(e)
	}
}

// isLocal asks the host about a domain in any form.
func (m *Manager) isLocal(d string) (string, bool) {
	n, err := domain.Normalize(d)
	if err != nil {
		return "", false
	}
	return n, m.cfg.IsLocal(n)
}

// Serve accepts incoming s2s streams on ln until the Manager is shut down or
// ln fails, and returns the error (ErrClosed after Shutdown or Close). ln
// is closed when Serve returns. Serve may be called for several listeners.
// A listener whose connections wrap sockets should let them offer theirs
// (syscall.Conn), as Config.DialContext says.
func (m *Manager) Serve(ln net.Listener) error {
	ln = m.limitListener(ln)
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	m.listeners[ln] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.listeners, ln)
		m.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			m.mu.Lock()
			closing := m.closing
			m.mu.Unlock()
			if closing {
				return ErrClosed
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than giving up the listener.
			if isTimeout(err) || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				m.log.Warn("s2s: accept failed; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-m.ctx.Done():
					return ErrClosed
				}
				continue
			}
			return err
		}
		delay = 0
		if !m.startIncoming(conn) {
			conn.Close()
			return ErrClosed
		}
	}
}

// isTemporary reports an error that says it is temporary: accept's EMFILE
// and friends.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Links returns the live authenticated links, outgoing and incoming, sorted
// by direction, local and remote domain.
func (m *Manager) Links() []LinkInfo {
	m.mu.Lock()
	outs := make([]*outLink, 0, len(m.out))
	for _, l := range m.out {
		outs = append(outs, l)
	}
	ins := make([]*inStream, 0, len(m.in))
	for s := range m.in {
		ins = append(ins, s)
	}
	m.mu.Unlock()
	var links []LinkInfo
	for _, l := range outs {
		if info, ok := l.info(); ok {
			links = append(links, info)
			links = append(links, l.reverseInfos()...)
		}
	}
	for _, s := range ins {
		links = append(links, s.infos()...)
	}
	slices.SortFunc(links, func(a, b LinkInfo) int {
		if a.Direction != b.Direction {
			return int(a.Direction) - int(b.Direction)
		}
		if a.Local != b.Local {
			if a.Local < b.Local {
				return -1
			}
			return 1
		}
		if a.Remote < b.Remote {
			return -1
		} else if a.Remote > b.Remote {
			return 1
		}
		return 0
	})
	return links
}

// Reload applies new options without a restart: the policy, the
// certificate, TLS mode and ciphers, the resolver options and the dialback
// secret take effect for new streams at once. On live incoming streams they
// judge every element from then on: a <db:verify> is checked with the new
// secret only, a dialback request on a plaintext stream is refused with
// policy-violation once TLS is required, and with required_trusted each new
// request needs a certificate that passes the new checks. Pairs already
// authenticated stay up unless the new policy denies them: live links to or
// from a host that the new policy denies are closed, and their queued
// stanzas bounced with policy-violation. On error nothing changes.
//
// Reload calls no host callback on the caller's goroutine but the Policy
// (when Config.Policy is set); the bounces it causes reach Config.Bounce
// from the Manager's bounce goroutine, possibly after Reload returns.
func (m *Manager) Reload(s config.S2S) error {
	old := m.settings()
	st, err := m.cfg.newSettings(s, old)
	if err != nil {
		return err
	}
	m.st.Store(st)
	// The policy is asked with no lock held: a host's Policy may block (a
	// lookup of its own), and Send, new links and the readers must not wait
	// for it.
	m.mu.Lock()
	all := make([]*outLink, 0, len(m.out))
	for _, l := range m.out {
		all = append(all, l)
	}
	ins := make([]*inStream, 0, len(m.in))
	for s := range m.in {
		ins = append(ins, s)
	}
	m.mu.Unlock()
	// Every denied link learns its reason before any is closed: closing
	// one makes the peer close others, and a link that saw that first
	// would report the peer's close instead of the policy.
	var outs []*outLink
	var texts []string
	for _, l := range all {
		d := st.policy.Decide(m.ctx, l.pair.remote)
		if d.Allowed() {
			continue
		}
		text := fmt.Sprintf("federation with %s is no longer allowed (%s)", l.pair.remote, d)
		l.setFailWhy(fmt.Errorf("%w: %s", ErrDenied, text))
		outs = append(outs, l)
		texts = append(texts, text)
	}
	var denied []*inStream
	var errs []stream.Error
	for _, s := range ins {
		if se, ok := s.deniedBy(st); ok {
			denied = append(denied, s)
			errs = append(errs, se)
		}
	}
	for i, l := range outs {
		l.fail(stanza.PolicyViolation, texts[i], ErrDenied, false)
	}
	for i, s := range denied {
		s.closeStream(&errs[i])
	}
	m.denyReverse(st)
	return nil
}

// ErrDenied is wrapped by the reason of whatever the policy refused: the
// Err of a policy-violation bounce of Send, of the LinkDown event of a link
// that Reload closed because the new policy denies its remote host, and of
// the AuthFailed event of a dialback or SASL EXTERNAL attempt by a denied
// host.
var ErrDenied = errors.New("s2s: denied by policy")

// Shutdown stops the Manager gracefully. Send bounces from then on; every
// outgoing queue drains (each stanza written or bounced) and its stream is
// closed with </stream:stream>, while incoming streams are still served so
// that peers can verify the keys of those last links; then the listeners
// close, incoming streams are closed, and Shutdown waits for the Manager's
// goroutines. When ctx ends first, what is still queued is bounced, every
// connection is closed at once, and ctx's error is returned without waiting
// further (a goroutine stuck in a host callback finishes when the callback
// returns).
//
// Shutdown does not call Config.Bounce on the caller's goroutine, and it does
// not wait for the bounces it causes to be delivered: a Bounce that waits for
// Shutdown to return cannot deadlock it. Done reports when the last of them
// was delivered. Shutdown does wait (until ctx ends) for Deliver and
// Observer calls in progress, so those must not wait for Shutdown.
func (m *Manager) Shutdown(ctx context.Context) error {
	defer m.endOnce.Do(func() {
		// Once every goroutine of the Manager is gone, nothing but a late
		// Send queues a bounce: Done closes when the queue is delivered.
		go func() {
			m.wg.Wait()
			m.bounces.end()
		}()
	})
	m.mu.Lock()
	m.stopping = true
	m.stopped.Store(true)
	outs := make([]*outLink, 0, len(m.out))
	for _, l := range m.out {
		outs = append(outs, l)
	}
	m.mu.Unlock()
	for _, l := range outs {
		l.drain()
	}
	err := waitGroup(ctx, &m.outWG)

	m.mu.Lock()
	m.closing = true
	m.stopSweep()
	for ln := range m.listeners {
		ln.Close()
	}
	ins := make([]*inStream, 0, len(m.in))
	for s := range m.in {
		ins = append(ins, s)
	}
	m.mu.Unlock()
	for _, s := range ins {
		s.closeStream(nil)
	}
	if err == nil {
		err = waitGroup(ctx, &m.wg)
	}
	if err == nil && m.cluster != nil {
		// The links' releases reach the Registry before Shutdown returns.
		err = m.cluster.flush(ctx)
	}
	if err != nil {
		// Before m.cancel: an attempt cut short by it would otherwise
		// bounce its queue as a failed link, before fail says why.
		for _, l := range outs {
			l.fail(stanza.ServiceUnavailable, "the s2s service shut down", ErrClosed, true)
		}
	}
	m.cancel()
	return err
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done returns a channel that is closed once Shutdown (or Close) has been
// called, every goroutine of the Manager has ended and every bounce made so
// far has been handed to Config.Bounce and returned. After it is closed, no
// host callback runs, except the Bounce of a stanza sent later (Send after
// Shutdown bounces with service-unavailable). A host waits on it before
// tearing down what its Bounce callback uses:
//
//	m.Shutdown(ctx)
//	<-m.Done()
func (m *Manager) Done() <-chan struct{} { return m.bounces.done }

// Close shuts the Manager down at once: Shutdown with an ended context.
func (m *Manager) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := m.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// newStreamID returns an unguessable stream id; dialback's security rests on
// it (XEP-0185 §3).
func newStreamID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tapped gives a new connection layer to the tests' recorder, if any.
func (m *Manager) tapped(c net.Conn) net.Conn {
	if m.cfg.tap == nil {
		return c
	}
	return m.cfg.tap(c)
}

// outLinkFor returns the registered outgoing link of a pair, or nil.
func (m *Manager) outLinkFor(p pair) *outLink {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out[p]
}

// holdOut counts a link that starts its owner goroutine (outgoing.go) in
// m.wg and m.outWG, unless the Manager is stopping (false).
func (m *Manager) holdOut() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return false
	}
	m.wg.Add(1)
	m.outWG.Add(1)
	return true
}

// dropOut takes a retired link (removed set) out of m.out, unless another
// link took its place already.
func (m *Manager) dropOut(l *outLink) {
	m.mu.Lock()
	if m.out[l.pair] == l {
		delete(m.out, l.pair)
	}
	m.mu.Unlock()
}

// spawnAlways runs f as one of the Manager's goroutines, which Shutdown
// waits for. Only a goroutine of the Manager, or a caller holding m.mu while
// the Manager is not closing, may call it, so that the wait group is never
// added to after Shutdown saw it at zero.
func (m *Manager) spawnAlways(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}
