package diagnose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/s2s"
)

// auth reports which authentication the remote server's features allow
// and, when the caller made it possible, attempts it.
func (p *probe) auth(ctx context.Context, o offer) {
	if o.reached {
		p.methods(o)
	}
	if p.cfg.Listener == nil && !p.cfg.Authenticate {
		p.rep.add(Check{Step: s2s.StepAuth, Name: "authentication attempt", Status: Warning,
			Detail: "not made: " + p.remote + " verifies a dialback key by asking " + p.local + "'s own server",
			Advice: "Run the diagnosis with a listener that " + p.remote + " reaches as " + p.local + " (examples/diagnose -listen), or against " + p.local + "'s running server with its shared secret (-auth with its -config)."})
		return
	}
	p.attempt(ctx)
}

// methods checks that we and the remote server share an authentication
// method.
func (p *probe) methods(o offer) {
	c := Check{Step: s2s.StepAuth, Name: "methods offered"}
	var names []string
	if o.external {
		names = append(names, "SASL EXTERNAL")
	}
	if o.dialback {
		names = append(names, "Server Dialback")
	}
	canExternal := o.external && o.secured && p.tls.Cert != nil && !p.cfg.DisableSASLExternal
	switch {
	case len(names) == 0:
		c.Status, c.Detail = Failure, "neither Server Dialback nor SASL EXTERNAL"
		c.Advice = p.noMethodAdvice()
	case !o.dialback && !canExternal:
		c.Status, c.Detail = Failure, "only SASL EXTERNAL, which we cannot use"
		switch {
		case p.cfg.DisableSASLExternal:
			c.Advice = "Enable SASL EXTERNAL, or ask " + p.remote + " to enable Server Dialback."
		case !o.secured:
			c.Advice = "SASL EXTERNAL needs TLS: set use_starttls to \"optional\" or higher."
		default:
			c.Advice = "SASL EXTERNAL needs our certificate: set certfile to a certificate for " + p.local + "."
		}
	default:
		c.Detail = strings.Join(names, ", ")
		if o.external && !canExternal {
			c.Detail += " (EXTERNAL unusable for us: no certificate or TLS)"
		}
	}
	p.rep.add(c)
}

// attempt links local to remote with a real Manager built from the same
// configuration, exactly as the host's Manager would, and reports how the
// link came up or the step it failed at.
func (p *probe) attempt(ctx context.Context) {
	type outcome struct {
		up     *s2s.Event
		failed error
		text   string
	}
	done := make(chan outcome, 1)
	report := func(o outcome) {
		select {
		case done <- o:
		default:
		}
	}
	logger := p.cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mc := s2s.Config{
		S2S:     p.cfg.S2S,
		IsLocal: func(d string) bool { return d == p.local },
		Deliver: func(s2s.Stanza) {},
		Bounce: func(b s2s.Bounce) {
			report(outcome{failed: b.Err, text: b.Text})
		},
		Observer: func(e s2s.Event) {
			if e.Link.Direction != s2s.Outgoing || e.Link.Local != p.local || e.Link.Remote != p.remote {
				return
			}
			switch e.Kind {
			case s2s.LinkUp:
				report(outcome{up: &e})
			case s2s.LinkFailed:
				report(outcome{failed: e.Err, text: e.Err.Error()})
			}
		},
		Logger:              logger,
		Resolver:            p.res,
		RootCAs:             p.cfg.RootCAs,
		Certificate:         p.cfg.Certificate,
		DialContext:         p.cfg.DialContext,
		DisableSASLExternal: p.cfg.DisableSASLExternal,
	}
	c := Check{Step: s2s.StepAuth, Name: "authentication attempt"}
	m, err := s2s.New(mc)
	if err != nil {
		c.Status, c.Detail = Failure, err.Error()
		p.rep.add(c)
		return
	}
	defer m.Close()
	if p.cfg.Listener != nil {
		go m.Serve(p.cfg.Listener)
	}
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	ping := fmt.Sprintf(`<iq type='get' id='diagnose-%d' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, start.UnixNano(), p.local, p.remote)
	if err := m.Send(actx, []byte(ping)); err != nil {
		c.Status, c.Detail = Failure, err.Error()
		p.rep.add(c)
		return
	}
	var o outcome
	select {
	case o = <-done:
	case <-actx.Done():
		o = outcome{failed: actx.Err(), text: "no answer within " + p.timeout.String()}
	}
	c.Took = time.Since(start)
	if o.up != nil {
		c.Detail = fmt.Sprintf("authenticated by %s over %s", o.up.Link.Auth, o.up.Link.TLS())
		p.rep.add(c)
		return
	}
	if st := s2s.StepOf(o.failed); st != "" {
		c.Step = st
	}
	c.Status, c.Detail = Failure, o.text
	c.Advice = p.authAdvice(o.failed)
	p.rep.add(c)
}

// authAdvice says what to do about a failed link attempt.
func (p *probe) authAdvice(err error) string {
	var se stanza.Error
	switch {
	case errors.Is(err, s2s.ErrExternalRefused):
		return fmt.Sprintf("%s refused our certificate for SASL EXTERNAL: it must chain to a CA %s trusts and name %s.", p.remote, p.remote, p.local)
	case errors.As(err, &se) && se.Condition == dialback.RemoteConnectionFailed:
		return fmt.Sprintf("%s could not connect back to %s to verify our dialback key: %s's s2s port must be reachable from %s at the address its DNS gives.", p.remote, p.local, p.local, p.remote)
	case errors.Is(err, s2s.ErrAuth):
		return fmt.Sprintf("%s did not accept our dialback key: the server it reached as %s must use the same shared secret as this diagnosis (every node of a cluster included), and %s's policy must allow %s.", p.remote, p.local, p.remote, p.local)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("The link did not come up in time: %s may be waiting for its own connection back to %s; check that %s's s2s port is reachable from it.", p.remote, p.local, p.local)
	}
	switch s2s.StepOf(err) {
	case s2s.StepStream:
		return fmt.Sprintf("%s ended the negotiation: see the stream checks above and %s's log.", p.remote, p.remote)
	case s2s.StepTLS:
		return "See the TLS checks above."
	case s2s.StepConnect, s2s.StepDNS:
		return "See the DNS and connect checks above."
	}
	return "See " + p.remote + "'s log."
}

func (p *probe) noMethodAdvice() string {
	return fmt.Sprintf("%s offers us no way to authenticate: ask its administrator to enable Server Dialback (Prosody: mod_dialback; ejabberd: mod_s2s_dialback) or SASL EXTERNAL with a trusted certificate for us.", p.remote)
}
