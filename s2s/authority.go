package s2s

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/resolver"
)

// authority asks remote authoritative servers to verify dialback keys that
// were presented to us (XEP-0220 §2.2, steps 2 and 3): over our up outgoing
// link for the same pair when there is one, as peers expect, else over a
// stream opened for that one question. Each incoming stream has its own,
// with the peer's address, within the bounds of verification.go.
type authority struct {
	m   *Manager
	src netip.Addr
}

func (a authority) Verify(ctx context.Context, v dialback.Verify) (dialback.Type, error) {
	m := a.m
	local, err := domain.Normalize(v.From)
	if err != nil {
		return dialback.Failed, err
	}
	remote, err := domain.Normalize(v.To)
	if err != nil {
		return dialback.Failed, err
	}
	p := pair{local, remote}
	return m.bounded(ctx, a.src, p, func(ctx context.Context) (dialback.Type, error) {
		return m.verify(ctx, p, v)
	})
}

// verify asks the authoritative server of p.remote about v.
func (m *Manager) verify(ctx context.Context, p pair, v dialback.Verify) (dialback.Type, error) {
	if l := m.outLinkFor(p); l != nil {
		l.mu.Lock()
		oc, _ := l.conn.(*outConn) // a stream of its own, where our dialback state is
		l.mu.Unlock()
		if oc != nil {
			typ, err := oc.ob.Verify(ctx, v, func(v dialback.Verify) error {
				return l.writeCtrl(oc, encode(v))
			})
			// The link died under the question (the peer restarted, say):
			// ask again on a stream of its own rather than fail the peer.
			if !errors.Is(err, dialback.ErrClosed) || ctx.Err() != nil {
				return typ, err
			}
		}
	}
	return m.verifyOnce(ctx, p, v)
}

// verifyOnce opens a stream to the authoritative server of p.remote, asks it
// to verify v and closes the stream.
func (m *Manager) verifyOnce(ctx context.Context, p pair, v dialback.Verify) (dialback.Type, error) {
	st := m.settings()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.NegotiationTimeout)
	defer cancel()
	oc, err := m.dialOut(ctx, st, p, false)
	if err != nil {
		// Tell the initiating server whether the authority was not found or
		// slow, as XEP-0220 §2.5 distinguishes.
		cond := conditionFor(err)
		if cond == stanza.RemoteServerNotFound && !isNotFound(err) {
			cond = dialback.RemoteConnectionFailed
		}
		return dialback.Failed, fmt.Errorf("verifying %s's key: %w: %w", p.remote, stanza.Error{Type: stanza.Cancel, Condition: cond}, err)
	}
	stop := context.AfterFunc(ctx, func() { oc.conn.Close() })
	defer stop()
	m.spawnAlways(func() { oc.readLoop(m, nil) })
	typ, err := oc.ob.Verify(ctx, v, func(v dialback.Verify) error {
		_, err := oc.conn.Write(encode(v))
		return err
	})
	// The answer is known: closing the stream needs nothing from the
	// authority, and the reader ends on its own (the Manager waits for
	// it at Shutdown). Waiting here for it to notice the close put two
	// wake-ups between the answer and the peer waiting for it.
	oc.close(true, nil)
	return typ, err
}

func isNotFound(err error) bool {
	return errors.Is(err, resolver.ErrNotFound) || errors.Is(err, resolver.ErrNoService)
}
