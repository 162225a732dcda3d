package diagnose

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/saslext"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// Feature namespaces the report names.
const (
	nsBidi   = "urn:xmpp:features:bidi"
	nsSM     = "urn:xmpp:sm:3"
	nsLimits = "urn:xmpp:stream-limits:0"
)

// offer is what the remote server's last features allow for
// authentication.
type offer struct {
	reached  bool // the features after the last restart were read
	secured  bool
	tls      tls.ConnectionState
	dialback bool
	external bool
}

// stream negotiates on conn as a link would (stream header, features, TLS
// by STARTTLS or directly, the new stream's features) without
// authenticating, and reports each stage.
func (p *probe) stream(ctx context.Context, conn net.Conn, target resolver.Target) offer {
	var o offer
	if conn == nil {
		return o
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	if target.Direct {
		tc, ok := p.handshake(ctx, conn, true)
		if !ok {
			return o
		}
		conn, o.secured, o.tls = tc, true, tc.ConnectionState()
	}
	for round := 0; round < 3; round++ {
		stage := "before TLS"
		if o.secured {
			stage = "after TLS"
		}
		if err := wire.WriteHeader(conn, wire.Header{From: p.local, To: p.remote}); err != nil {
			p.streamFailure("stream header", err, ctx)
			return o
		}
		r := wire.NewReader(conn, wire.DefaultLimits)
		h, err := r.ReadHeader()
		if err != nil {
			p.streamFailure("stream header", err, ctx)
			return o
		}
		e, err := r.Next()
		var feats []wire.Feature
		if err == nil {
			feats, err = wire.ParseFeatures(e)
		}
		if err != nil {
			p.streamFailure("stream features "+stage, err, ctx)
			return o
		}
		p.rep.add(Check{Step: s2s.StepStream, Name: "stream features " + stage, Detail: describeFeatures(h, feats)})

		var tlsOffered, tlsRequired bool
		for _, f := range feats {
			switch f.Name {
			case xml.Name{Space: starttls.NS, Local: "starttls"}:
				tlsOffered, tlsRequired = true, f.Required
			case xml.Name{Space: dialback.FeatureNS, Local: "dialback"}:
				o.dialback = true
			}
		}
		o.dialback = o.dialback || h.Dialback
		o.external = offersExternal(feats)
		if !o.secured {
			start, err := p.tls.Outgoing(tlsOffered, tlsRequired)
			if err != nil {
				c := Check{Step: s2s.StepTLS, Name: "STARTTLS", Status: Failure, Detail: err.Error()}
				switch {
				case errors.Is(err, starttls.ErrNotOffered):
					c.Advice = fmt.Sprintf("%s does not offer STARTTLS and our use_starttls = %q requires it: ask its administrator to enable TLS, or lower use_starttls to \"optional\".", p.remote, p.tls.Mode)
				case errors.Is(err, starttls.ErrPeerRequires):
					c.Advice = fmt.Sprintf("%s requires TLS and our use_starttls = \"false\" refuses it: set use_starttls to \"optional\" or higher, with a certfile.", p.remote)
				}
				p.rep.add(c)
				wire.WriteClose(conn)
				return o
			}
			if start {
				tc, ok := p.startTLS(ctx, conn, r)
				if !ok {
					return o
				}
				conn, o.secured, o.tls = tc, true, tc.ConnectionState()
				continue // a new stream over TLS
			}
			c := Check{Step: s2s.StepTLS, Name: "STARTTLS", Status: Warning}
			if tlsOffered {
				c.Detail = "offered, not used: our use_starttls = \"false\""
				c.Advice = "Links to " + p.remote + " are not encrypted: set use_starttls to \"optional\" or higher, with a certfile."
			} else {
				c.Detail = "not offered by " + p.remote
				c.Advice = "Links to " + p.remote + " are not encrypted: ask its administrator to enable TLS."
			}
			p.rep.add(c)
		}
		o.reached = true
		wire.WriteClose(conn)
		return o
	}
	return o
}

// streamFailure reports a stream that ended or went wrong before its
// features, naming the peer's stream error when it sent one.
func (p *probe) streamFailure(what string, err error, ctx context.Context) {
	c := Check{Step: s2s.StepStream, Name: what, Status: Failure, Detail: err.Error()}
	var pe *wire.PeerError
	switch {
	case errors.As(err, &pe):
		c.Detail = fmt.Sprintf("%s answered with the stream error %s", p.remote, pe.Err.Err)
		for _, t := range pe.Err.Text {
			c.Detail += ": " + t.Value
		}
		switch pe.Err.Err {
		case "host-unknown":
			c.Advice = fmt.Sprintf("The server at this address does not serve %s: fix the SRV record or address override, or add %s to that server's hosts.", p.remote, p.remote)
		case "policy-violation", "not-authorized":
			c.Advice = fmt.Sprintf("%s refuses streams from %s: ask its administrator to allow federation with %s.", p.remote, p.local, p.local)
		default:
			c.Advice = fmt.Sprintf("%s's log says why it ended the stream.", p.remote)
		}
		if strings.Contains(strings.ToLower(c.Detail), "feature") {
			// Prosody without dialback and without a certificate it can
			// use says "No stream features to offer": no way for us to
			// authenticate, which is what the operator must fix.
			p.rep.add(c)
			p.rep.add(Check{Step: s2s.StepAuth, Name: "methods offered", Status: Failure,
				Detail: fmt.Sprintf("neither Server Dialback nor SASL EXTERNAL (%s has no features to offer)", p.remote),
				Advice: p.noMethodAdvice()})
			return
		}
	case ctx.Err() != nil:
		c.Detail += " (no answer within the timeout)"
		c.Advice = "Something listens there but says nothing XMPP: check that the port is the s2s port (5269), not a client or HTTP port, and that nothing in between holds the connection."
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		c.Advice = "The server closed the connection before any XMPP stream: check that the port is its s2s port and see its log."
	default:
		c.Advice = "The answer is not an XMPP server's stream: check that the target is " + p.remote + "'s s2s port."
	}
	p.rep.add(c)
}

// startTLS runs the STARTTLS exchange and the handshake on conn.
func (p *probe) startTLS(ctx context.Context, conn net.Conn, r *wire.Reader) (*tls.Conn, bool) {
	if _, err := io.WriteString(conn, starttls.StartTLS); err != nil {
		p.rep.add(Check{Step: s2s.StepTLS, Name: "STARTTLS", Status: Failure, Detail: err.Error(), Advice: "The connection broke: see " + p.remote + "'s log."})
		return nil, false
	}
	e, err := r.Next()
	switch {
	case err != nil:
		p.rep.add(Check{Step: s2s.StepTLS, Name: "STARTTLS", Status: Failure, Detail: "no <proceed/>: " + err.Error(), Advice: "See " + p.remote + "'s log for why it did not start TLS."})
		return nil, false
	case e.Name != xml.Name{Space: starttls.NS, Local: "proceed"}:
		p.rep.add(Check{Step: s2s.StepTLS, Name: "STARTTLS", Status: Failure, Detail: fmt.Sprintf("answered <%s/> instead of <proceed/>", e.Name.Local),
			Advice: p.remote + " could not start TLS: its certificate or key may be missing; see its log."})
		return nil, false
	case r.Buffered() > 0:
		p.rep.add(Check{Step: s2s.StepTLS, Name: "STARTTLS", Status: Failure, Detail: "plaintext after <proceed/>",
			Advice: "Something between us and " + p.remote + " injects data into the stream: check for a middlebox."})
		return nil, false
	}
	return p.handshake(ctx, conn, false)
}

// handshake runs a TLS handshake that accepts any certificate, so that the
// certificate can be examined and reported rather than only refused; the
// checks that a link makes follow it.
func (p *probe) handshake(ctx context.Context, conn net.Conn, direct bool) (*tls.Conn, bool) {
	name := "handshake (STARTTLS)"
	var cfg *tls.Config
	var err error
	if direct {
		name = "handshake (direct TLS)"
		cfg, err = p.tls.DirectClientConfig(p.remote)
	} else {
		cfg, err = p.tls.ClientConfig(p.remote)
	}
	if err != nil {
		p.rep.add(Check{Step: s2s.StepTLS, Name: name, Status: Failure, Detail: err.Error()})
		return nil, false
	}
	cfg.VerifyConnection = nil
	tc := tls.Client(conn, cfg)
	start := time.Now()
	err = tc.HandshakeContext(ctx)
	c := Check{Step: s2s.StepTLS, Name: name, Took: time.Since(start)}
	if err != nil {
		c.Status, c.Detail = Failure, err.Error()
		var alert tls.AlertError
		switch {
		case errors.As(err, &alert) && (alert == 42 || alert == 43 || alert == 44 || alert == 45 || alert == 46 || alert == 48 || alert == 116):
			// bad_certificate … unknown_ca, certificate_required.
			c.Advice = fmt.Sprintf("%s refused our certificate during the handshake: it must chain to a CA %s trusts and name %s; see the checks of our certificate above.", p.remote, p.remote, p.local)
		case errors.As(err, &alert) && (alert == 70 || alert == 40 || alert == 71):
			c.Advice = fmt.Sprintf("No TLS version or cipher in common with %s: widen the ciphers option (now %q).", p.remote, p.cfg.S2S.Ciphers)
		default:
			c.Advice = "The TLS handshake broke off: see " + p.remote + "'s log; a port that does not speak TLS gives this too."
		}
		p.rep.add(c)
		return nil, false
	}
	cs := tc.ConnectionState()
	c.Detail = fmt.Sprintf("%s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	if cs.NegotiatedProtocol != "" {
		c.Detail += ", ALPN " + cs.NegotiatedProtocol
	}
	if cs.Version < tls.VersionTLS12 {
		c.Status = Warning
		c.Advice = "TLS older than 1.2 is broken: ask " + p.remote + " to enable TLS 1.2 or 1.3."
	}
	p.rep.add(c)
	p.peerCertificate(cs.PeerCertificates)
	return tc, true
}

// describeFeatures lists what a <stream:features> offers, by name.
func describeFeatures(h wire.Header, feats []wire.Feature) string {
	var parts []string
	for _, f := range feats {
		switch f.Name {
		case xml.Name{Space: starttls.NS, Local: "starttls"}:
			if f.Required {
				parts = append(parts, "STARTTLS (required)")
			} else {
				parts = append(parts, "STARTTLS")
			}
		case xml.Name{Space: dialback.FeatureNS, Local: "dialback"}:
			parts = append(parts, "dialback")
		case xml.Name{Space: saslext.NS, Local: "mechanisms"}:
			mechs, _ := parseMechanisms(f)
			if len(mechs) == 0 {
				parts = append(parts, "SASL (no mechanism)")
			} else {
				parts = append(parts, "SASL "+strings.Join(mechs, " "))
			}
		case xml.Name{Space: nsBidi, Local: "bidi"}:
			parts = append(parts, "bidi")
		case xml.Name{Space: nsSM, Local: "sm"}:
			parts = append(parts, "stream management")
		case xml.Name{Space: nsLimits, Local: "limits"}:
			parts = append(parts, "limits"+describeLimits(f.Raw))
		default:
			parts = append(parts, fmt.Sprintf("{%s}%s", f.Name.Space, f.Name.Local))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "none")
	}
	s := strings.Join(parts, ", ")
	if h.Dialback {
		s += "; header declares dialback"
	}
	return s
}

// describeLimits reads XEP-0478's max-bytes and idle-seconds.
func describeLimits(raw []byte) string {
	var l struct {
		MaxBytes    string `xml:"max-bytes"`
		IdleSeconds string `xml:"idle-seconds"`
	}
	if xml.Unmarshal(raw, &l) != nil {
		return ""
	}
	var parts []string
	if l.MaxBytes != "" {
		parts = append(parts, "max-bytes "+strings.TrimSpace(l.MaxBytes))
	}
	if l.IdleSeconds != "" {
		parts = append(parts, "idle-seconds "+strings.TrimSpace(l.IdleSeconds))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func parseMechanisms(f wire.Feature) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(f.Raw))
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	start, _ := tok.(xml.StartElement)
	return saslext.ParseMechanisms(d, start)
}

func offersExternal(feats []wire.Feature) bool {
	for _, f := range feats {
		if f.Name != (xml.Name{Space: saslext.NS, Local: "mechanisms"}) {
			continue
		}
		mechs, err := parseMechanisms(f)
		if err != nil {
			return false
		}
		for _, m := range mechs {
			if m == saslext.Name {
				return true
			}
		}
	}
	return false
}
