package interop

import (
	"github.com/xmpp-s2s/federation/s2s"
	"strconv"
	"strings"
	"testing"
)

const prosodyDomain = "prosody.test"

// prosodyPeer drives a Prosody through prosodyctl shell.
type prosodyPeer struct {
	*Prosody
	pings chan pingResult
}

type pingResult struct {
	out string
	err error
}

func (p *prosodyPeer) Domain() string                   { return p.Prosody.Domain }
func (p *prosodyPeer) VerifiesOverExistingStream() bool { return true }

// PingUs runs `xmpp ping` in the background: it blocks until the pong, and
// our side must answer meanwhile.
func (p *prosodyPeer) PingUs(t *testing.T) {
	go func() {
		ctx, cancel := ctlContext()
		defer cancel()
		out, err := p.Ping(ctx, p.Prosody.Domain, ourDomain)
		p.pings <- pingResult{out, err}
	}()
}

func (p *prosodyPeer) result(t *testing.T) pingResult {
	t.Helper()
	return <-p.pings // bounded: the command runs under ctlContext
}

func (p *prosodyPeer) GotPong(t *testing.T, _ string) {
	t.Helper()
	r := p.result(t)
	if r.err != nil || !strings.Contains(r.out, "pong from "+ourDomain) {
		t.Fatalf("prosodyctl xmpp ping: %v\n%s", r.err, r.out)
	}
}

func (p *prosodyPeer) Refused(t *testing.T) string {
	t.Helper()
	r := p.result(t)
	if r.err == nil || strings.Contains(r.out, "pong from") {
		t.Fatalf("prosodyctl xmpp ping succeeded while we deny it:\n%s", r.out)
	}
	// Prosody reports any <db:result type='error'> as a failed dialback;
	// its log shows that it was our error answer, not a lost connection.
	if !strings.Contains(r.out, "dialback authentication failed") {
		t.Errorf("prosodyctl xmpp ping failed for another reason:\n%s", r.out)
	}
	waitLog(t, p, "our dialback error", "Received[s2sout_unauthed]: <result", "type='error'")
	return strings.TrimSpace(r.out)
}

// startProsodyPeer starts our Manager and a Prosody that know each other.
func startProsodyPeer(t *testing.T, ourMode string, c ProsodyConfig, tweaks ...func(*s2s.Config)) (*ours, *prosodyPeer) {
	t.Helper()
	ln := listenOurs(t)
	c.Domain = prosodyDomain
	c.Routes = []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}}
	if c.TLS != "false" {
		c.CertPEM = leafFor(t, prosodyDomain).PEM
	}
	p := &prosodyPeer{Prosody: StartProsody(t, c), pings: make(chan pingResult, 1)}
	return startOurs(t, ln, ourMode, prosodyDomain, p.Port, tweaks...), p
}

// TestProsody runs every scenario against Prosody, once per STARTTLS mode,
// with Prosody configured to match: no mod_tls, TLS offered, TLS required.
func TestProsody(t *testing.T) {
	for i, mode := range []string{"false", "optional", "required"} {
		t.Run(strconv.Itoa(i)+"-"+mode, func(t *testing.T) {
			o, p := startProsodyPeer(t, mode, ProsodyConfig{TLS: mode})
			scenarios(t, o, p, mode)
		})
	}
}

// TestProsodyRequiredTrusted links with Prosody when both sides insist on
// a certificate that chains to a trusted CA and names the peer: our
// use_starttls = "required_trusted", Prosody's s2s_secure_auth = true,
// both trusting the test CA.
func TestProsodyRequiredTrusted(t *testing.T) {
	o, p := startProsodyPeer(t, "required_trusted", ProsodyConfig{
		TLS: "required", SecureAuth: true, CAPEM: testCA().PEM(),
	})
	p.PingUs(t)
	got := o.deliveredMatching(t, "Prosody's ping", isPing)
	p.GotPong(t, got.ID)
	o.send(t, "<iq type='get' id='trusted-ping' from='"+ourDomain+"' to='"+prosodyDomain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	o.deliveredMatching(t, "Prosody's pong", func(s s2s.Stanza) bool { return s.ID == "trusted-ping" && s.Type == "result" })
	out, in := o.links(prosodyDomain)
	if len(out) != 1 || len(in) != 1 {
		t.Fatalf("links: out %+v, in %+v", out, in)
	}
	for _, l := range append(out, in...) {
		if l.TLSVersion == 0 {
			t.Errorf("%s link not encrypted", l.Direction)
		}
		t.Logf("%s link: %s %s, auth %s", l.Direction, l.TLS(), l.Cipher(), l.Auth)
	}
	// Prosody must have accepted our certificate, not merely our key.
	ctx, cancel := ctlContext()
	defer cancel()
	show, err := p.Shell(ctx, "s2s", "show_tls")
	if err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	t.Logf("prosodyctl shell s2s show_tls:\n%s", show)
	waitLog(t, p, "a trusted certificate from us", "certificate chain validation result: valid")
}
