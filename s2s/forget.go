package s2s

import "time"

// A pair whose link failed keeps its outLink only while its retry delay
// matters: without this, every unknown domain a local user ever wrote to
// would cost memory for the Manager's lifetime. When the delay has passed
// and nothing asked for the pair during it, the link is forgotten, and the
// next stanza starts afresh (first delay again). A pair that kept being
// asked for is kept for one more delay, so that a domain which keeps
// failing while traffic continues still sees its delays double.

// armForget schedules the check for the link, whose attempt just failed
// and must now wait delay. The caller holds l.mu.
func (l *outLink) armForget(delay time.Duration) {
	if l.forgetTimer != nil {
		l.forgetTimer.Stop()
	}
	l.askedInWait = false
	l.forgetTimer = l.m.clock.AfterFunc(delay, func() { l.m.forgetIfUnused(l, delay) })
}

// forgetIfUnused removes an idle, empty link from the Manager once its
// retry delay has passed, unless stanzas asked for it during the delay.
func (m *Manager) forgetIfUnused(l *outLink, delay time.Duration) {
	l.mu.Lock()
	if l.removed || l.conn != nil || len(l.queue) > 0 || m.clock.Now().Before(l.retryAt) {
		// Gone already, or busy again (an attempt runs for what is
		// queued, or a new failure armed its own check). An owner that
		// is still running with nothing queued and no stream is about
		// to park: the link may go.
		l.mu.Unlock()
		return
	}
	if l.askedInWait {
		l.askedInWait = false
		l.forgetTimer = m.clock.AfterFunc(delay, func() { m.forgetIfUnused(l, delay) })
		l.mu.Unlock()
		return
	}
	l.forgetTimer = nil
	l.removed = true
	l.mu.Unlock()
	m.dropOut(l)
	if m.cfg.forgot != nil {
		m.cfg.forgot(l.pair)
	}
}
