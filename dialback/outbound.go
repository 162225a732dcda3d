package dialback

import (
	"context"
	"fmt"
	"sync"

	"mellium.im/xmpp/stanza"
)

// Outbound is the dialback state of one outgoing stream, for the two things
// XEP-0220 §2.1 does over it: ask the peer to accept a domain pair (we are
// the initiating server), and ask the peer to verify a key another server
// presented to us (we are the receiving server, the peer authoritative).
// It remembers every request it makes so that only answers to them are
// believed (XEP-0220 §3.1).
//
// Create one with [NewOutbound] once the peer's stream header, and so the
// stream ID, is known. Its methods are safe for concurrent use: the stream's
// reader goroutine calls [Outbound.Resolve] and [Outbound.Deliver] while
// other goroutines call [Outbound.Request] and [Outbound.Verify].
type Outbound struct {
	keys     KeySource
	streamID string

	mu       sync.Mutex
	results  map[Pair]struct{}             // (local, remote) awaiting an answer
	verifies map[verifyKey][]chan<- Verify // waiters by request
	closed   error                         // set by Close
}

// verifyKey identifies a <db:verify> request: its from and to, normalised,
// and its id as written.
type verifyKey struct {
	from, to, id string
}

// NewOutbound returns the state of an outgoing stream whose peer gave it
// streamID (possibly empty: some peers send id=”). ks generates the keys
// of our requests.
func NewOutbound(ks KeySource, streamID string) *Outbound {
	return &Outbound{
		keys:     ks,
		streamID: streamID,
		results:  make(map[Pair]struct{}),
		verifies: make(map[verifyKey][]chan<- Verify),
	}
}

// Request returns the <db:result> that asks the peer to accept stanzas from
// the local domain to the remote one, and records it as pending. The caller
// writes it and, until [Outbound.Resolve] reports the answer, queues the
// pair's stanzas. Domains are written as given.
//
// It fails with [ErrPending] if the pair already waits for an answer, with
// [ErrClosed] after Close, or with the key source's error.
func (o *Outbound) Request(local, remote string) (Result, error) {
	k, err := normPair(local, remote)
	if err != nil {
		return Result{}, err
	}
	key, err := o.keys.Key(remote, local, o.streamID)
	if err != nil {
		return Result{}, fmt.Errorf("dialback: key for %s to %s: %w", local, remote, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed != nil {
		return Result{}, o.closed
	}
	if _, ok := o.results[k]; ok {
		return Result{}, fmt.Errorf("%w: %s to %s", ErrPending, local, remote)
	}
	o.results[k] = struct{}{}
	return Result{From: local, To: remote, Key: key}, nil
}

// Resolve interprets a <db:result> answer that arrived on the stream and
// returns the pair it is for (From local, To remote, normalised).
//
// A nil error means the peer accepts the pair's stanzas now. Otherwise the
// error wraps [ErrInvalid] (XEP-0220: bounce the queued stanzas with
// internal-server-error; the peer will likely close the stream), a
// [stanza.Error] with the peer's dialback error condition (bounce them with
// remote-server-timeout; the stream stays usable), or [ErrUnsolicited] for
// an answer to nothing we asked, or a request, which the caller drops.
func (o *Outbound) Resolve(r Result) (Pair, error) {
	if r.Type == Request {
		return Pair{}, fmt.Errorf("%w: <db:result/> request on an outgoing stream", ErrUnsolicited)
	}
	// The answer swaps from and to.
	k, err := normPair(r.To, r.From)
	if err != nil {
		return Pair{}, fmt.Errorf("%w: %w", ErrUnsolicited, err)
	}
	o.mu.Lock()
	_, ok := o.results[k]
	delete(o.results, k)
	o.mu.Unlock()
	if !ok {
		return Pair{}, fmt.Errorf("%w: <db:result/> answer for %s to %s", ErrUnsolicited, r.To, r.From)
	}
	switch r.Type {
	case Valid:
		return k, nil
	case Invalid:
		return k, fmt.Errorf("%w: %s to %s", ErrInvalid, k.From, k.To)
	default:
		se := r.Err
		if se == nil {
			se = newError(stanza.UndefinedCondition)
		}
		return k, fmt.Errorf("dialback: %s to %s: %w", k.From, k.To, *se)
	}
}

// Verify asks the peer, as the authoritative server, whether v.Key is valid
// and waits for the answer, the context's end or the stream's close. send
// writes the request on the stream (the caller serialises its writes); v is
// sent as a request whatever its Type. An [Outbound] can serve as the
// transport of an [Authority].
//
// It returns the answer's type: Valid or Invalid with a nil error, or Failed
// with an error wrapping the [stanza.Error] the peer sent. Other errors wrap
// the context's error, [ErrClosed], or send's error.
func (o *Outbound) Verify(ctx context.Context, v Verify, send func(Verify) error) (Type, error) {
	k, err := normPair(v.From, v.To)
	if err != nil {
		return "", err
	}
	vk := verifyKey{k.From, k.To, v.ID}
	ch := make(chan Verify, 1)
	o.mu.Lock()
	if o.closed != nil {
		o.mu.Unlock()
		return "", o.closed
	}
	o.verifies[vk] = append(o.verifies[vk], ch)
	o.mu.Unlock()

	v.Type, v.Err = Request, nil
	if err := send(v); err != nil {
		o.forget(vk, ch)
		return "", fmt.Errorf("dialback: sending <db:verify/>: %w", err)
	}
	select {
	case ans, ok := <-ch:
		if !ok {
			o.mu.Lock()
			err := o.closed
			o.mu.Unlock()
			return "", err
		}
		if ans.Type == Failed {
			se := ans.Err
			if se == nil {
				se = newError(stanza.UndefinedCondition)
			}
			return Failed, fmt.Errorf("dialback: authoritative server for %s: %w", v.To, *se)
		}
		return ans.Type, nil
	case <-ctx.Done():
		o.forget(vk, ch)
		return "", fmt.Errorf("dialback: waiting for <db:verify/> answer from %s: %w", v.To, ctx.Err())
	}
}

// Deliver hands a <db:verify> answer that arrived on the stream to the
// [Outbound.Verify] calls waiting for it. It returns an error wrapping
// [ErrUnsolicited] when none is (the caller drops the element).
func (o *Outbound) Deliver(v Verify) error {
	if v.Type == Request {
		return fmt.Errorf("%w: <db:verify/> request on an outgoing stream", ErrUnsolicited)
	}
	k, err := normPair(v.To, v.From)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsolicited, err)
	}
	vk := verifyKey{k.From, k.To, v.ID}
	o.mu.Lock()
	waiters := o.verifies[vk]
	delete(o.verifies, vk)
	o.mu.Unlock()
	if len(waiters) == 0 {
		return fmt.Errorf("%w: <db:verify/> answer for %s to %s", ErrUnsolicited, v.To, v.From)
	}
	for _, ch := range waiters {
		ch <- v // buffered, and each channel is in the map at most once
	}
	return nil
}

// Close records that the stream ended: waiting Verify calls return an error
// wrapping [ErrClosed] and cause, later requests fail the same way. It
// returns the pairs whose <db:result/> was still unanswered, whose stanzas
// the caller bounces (XEP-0220 treats this like a dialback error).
// Answers delivered before Close are unaffected, so a peer that closes a
// verification-only stream right after answering is fine.
func (o *Outbound) Close(cause error) []Pair {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed != nil {
		return nil
	}
	if cause == nil {
		o.closed = ErrClosed
	} else {
		o.closed = fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	for vk, waiters := range o.verifies {
		for _, ch := range waiters {
			close(ch)
		}
		delete(o.verifies, vk)
	}
	pending := make([]Pair, 0, len(o.results))
	for k := range o.results {
		pending = append(pending, k)
	}
	clear(o.results)
	return pending
}

func (o *Outbound) forget(vk verifyKey, ch chan<- Verify) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ws := o.verifies[vk]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(o.verifies, vk)
	} else {
		o.verifies[vk] = ws
	}
}
