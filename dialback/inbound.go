package dialback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xmpp-s2s/federation/internal/domain"
	"mellium.im/xmpp/stanza"
)

// DefaultTimeout bounds the verification of a key with the authoritative
// server when [Inbound.Timeout] is zero: long enough for a DNS lookup, a
// connection and a stream negotiation on a slow network.
const DefaultTimeout = 30 * time.Second

// Authority reaches the authoritative server of a domain to verify a key
// (XEP-0220 step 2 and 3). Verify sends v, a <db:verify/> request whose To
// is the sender domain to verify, over an existing outgoing stream to that
// domain or a new one, and returns the answer's type.
//
// To choose the dialback error the initiating server gets, Verify returns
// Failed when the authoritative server answered with an error, an error
// wrapping a [stanza.Error] to name the condition itself (for example
// remote-server-not-found when the domain does not resolve), or any other
// error for a connection that failed. It must return when ctx ends.
// Implementations must be safe for concurrent use. [Outbound.Verify] does
// the stream side of the work.
type Authority interface {
	Verify(ctx context.Context, v Verify) (Type, error)
}

// AuthorityFunc adapts a function to an [Authority].
type AuthorityFunc func(ctx context.Context, v Verify) (Type, error)

// Verify calls f.
func (f AuthorityFunc) Verify(ctx context.Context, v Verify) (Type, error) { return f(ctx, v) }

// Inbound answers the dialback requests that arrive on incoming streams
// (XEP-0220 §2.2): <db:result/> as the receiving server, <db:verify/> as the
// authoritative server. It is a small value of callbacks; a caller that
// decides per stream (on TLS, say) can make one per stream.
//
// The zero value refuses every request (no domain is local). Methods are
// safe for concurrent use when the callbacks are.
type Inbound struct {
	// Keys recomputes keys to answer <db:verify/>. Nil answers every
	// <db:verify/> with an internal-server-error dialback error.
	Keys KeySource

	// IsLocal reports whether a normalised domain is served here. Nil means
	// none is.
	IsLocal func(domain string) bool

	// Allow decides whether stanzas may come from a normalised remote
	// domain. A non-nil error refuses it with the condition of the
	// stanza.Error it wraps, or policy-violation. Nil allows every domain.
	Allow func(remote string) error

	// Authority verifies keys with authoritative servers. Nil answers every
	// <db:result/> with remote-connection-failed.
	Authority Authority

	// Timeout bounds each verification; zero means DefaultTimeout.
	Timeout time.Duration
}

// Handle answers a <db:result/> request received on the incoming stream with
// id streamID whose authenticated pairs are in pairs (not nil). It blocks while it
// asks the authoritative server, so the stream's reader calls it in a
// goroutine of its own, with a ctx that ends when the stream does, and
// writes the answer it returns. A valid pair is added to pairs before
// Handle returns, so stanzas that follow the answer are accepted.
//
// The returned error says why the pair was not accepted: it wraps
// [ErrInvalid] when the authoritative server refused the key, and/or a
// [stanza.Error] with the dialback error condition sent in the answer:
//
//   - item-not-found: 'to' is not a local domain (no verification is done);
//   - the Allow error's condition, or policy-violation: 'from' is refused;
//   - remote-server-not-found: the authoritative server answered an error;
//   - remote-server-timeout: no answer within Timeout, or the stream to the
//     authoritative server closed first (the error also wraps the cause);
//   - remote-connection-failed: the Authority failed otherwise;
//   - forbidden: the key is invalid but the stream carries other
//     authenticated pairs, which an 'invalid' answer would end.
//
// When the answer's Type is Invalid, XEP-0220 §2.2.1 requires the caller to
// close the stream after writing it. Every other answer leaves the stream
// up. A Result that is not a request (a peer using XEP-0288 or spoofing an
// answer) gets no answer (zero Result) and an error wrapping
// [ErrUnsolicited]; the caller drops it.
func (in Inbound) Handle(ctx context.Context, streamID string, pairs *Pairs, r Result) (Result, error) {
	if r.Type != Request {
		return Result{}, fmt.Errorf("%w: <db:result type=%q/> on an incoming stream", ErrUnsolicited, r.Type)
	}
	fail := func(c stanza.Condition, cause error) (Result, error) {
		se := newError(c)
		ans := Result{From: r.To, To: r.From, Type: Failed, Err: se}
		if cause != nil {
			return ans, fmt.Errorf("dialback: %s to %s: %w: %w", r.From, r.To, *se, cause)
		}
		return ans, fmt.Errorf("dialback: %s to %s: %w", r.From, r.To, *se)
	}

	to, err := domain.Normalize(r.To)
	if err != nil || in.IsLocal == nil || !in.IsLocal(to) {
		return fail(stanza.ItemNotFound, err)
	}
	from, err := domain.Normalize(r.From)
	if err != nil {
		return fail(stanza.NotAcceptable, err)
	}
	if in.Allow != nil {
		if err := in.Allow(from); err != nil {
			var se stanza.Error
			if errors.As(err, &se) && se.Condition != "" {
				return fail(se.Condition, err)
			}
			return fail(stanza.PolicyViolation, err)
		}
	}
	if pairs.Has(from, to) {
		// Asked again for a pair already accepted: nothing to verify.
		return Result{From: r.To, To: r.From, Type: Valid}, nil
	}
	if in.Authority == nil {
		return fail(RemoteConnectionFailed, errors.New("dialback: no authority configured"))
	}

	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The authoritative server recomputes the key over the domains as the
	// initiating server wrote them, so they are passed on unchanged.
	typ, err := in.Authority.Verify(vctx, Verify{From: r.To, To: r.From, ID: streamID, Key: r.Key})

	var se stanza.Error
	switch {
	case typ == Failed:
		// XEP-0220 §2.5: any error in step 3 is remote-server-not-found.
		if err == nil {
			err = errors.New("dialback: authoritative server answered an error")
		}
		return fail(stanza.RemoteServerNotFound, err)
	case err == nil && typ == Valid:
		if err := pairs.Add(from, to); err != nil {
			return fail(stanza.InternalServerError, err)
		}
		return Result{From: r.To, To: r.From, Type: Valid}, nil
	case err == nil && typ == Invalid:
		if pairs.Len() > 0 {
			ans, err := fail(stanza.Forbidden, nil)
			return ans, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return Result{From: r.To, To: r.From, Type: Invalid},
			fmt.Errorf("%w: %s to %s", ErrInvalid, r.From, r.To)
	case err == nil:
		return fail(stanza.RemoteServerNotFound, fmt.Errorf("dialback: authority returned type %q", typ))
	case errors.As(err, &se) && se.Condition != "":
		return fail(se.Condition, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		return fail(stanza.RemoteServerTimeout, err)
	default:
		return fail(RemoteConnectionFailed, err)
	}
}

// Answer answers a <db:verify/> request as the authoritative server, by
// recomputing the key for its from, to and id with Keys. It does not block
// and does not care which stream the request came on: a peer may send it on
// a stream opened only for it, or on its stream that already carries
// stanzas. The caller writes the answer.
//
// The answer is Valid or Invalid (the error then wraps [ErrInvalid], worth
// logging: someone presented a key we did not make), or a dialback error:
// item-not-found when 'to' is not local, internal-server-error when no key
// can be computed. A Verify that is not a request gets no answer (zero
// Verify) and an error wrapping [ErrUnsolicited].
func (in Inbound) Answer(v Verify) (Verify, error) {
	if v.Type != Request {
		return Verify{}, fmt.Errorf("%w: <db:verify type=%q/> on an incoming stream", ErrUnsolicited, v.Type)
	}
	ans := Verify{From: v.To, To: v.From, ID: v.ID}
	fail := func(c stanza.Condition, cause error) (Verify, error) {
		ans.Type, ans.Err = Failed, newError(c)
		if cause != nil {
			return ans, fmt.Errorf("dialback: verify %s to %s: %w: %w", v.From, v.To, *ans.Err, cause)
		}
		return ans, fmt.Errorf("dialback: verify %s to %s: %w", v.From, v.To, *ans.Err)
	}
	to, err := domain.Normalize(v.To)
	if err != nil || in.IsLocal == nil || !in.IsLocal(to) {
		return fail(stanza.ItemNotFound, err)
	}
	if in.Keys == nil {
		return fail(stanza.InternalServerError, errors.New("dialback: no key source configured"))
	}
	if _, err := domain.Normalize(v.From); err != nil {
		// We never made a key for a name that is not a domain.
		ans.Type = Invalid
		return ans, fmt.Errorf("%w: verify from %w", ErrInvalid, err)
	}
	// The key was made by us as the initiating server: 'from' of the
	// request is the receiving server, 'to' is us.
	ok, err := Check(in.Keys, v.Key, v.From, v.To, v.ID)
	if err != nil {
		return fail(stanza.InternalServerError, err)
	}
	if !ok {
		ans.Type = Invalid
		return ans, fmt.Errorf("%w: verify %s to %s", ErrInvalid, v.From, v.To)
	}
	ans.Type = Valid
	return ans, nil
}
