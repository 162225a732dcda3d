package interop

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
)

const ejabberdDomain = "ej.test"

// ejabberdPeer drives an ejabberd through ejabberdctl send_stanza and
// reads what it did from its debug log, which records every XML element.
type ejabberdPeer struct {
	*Ejabberd
	n        atomic.Int64
	logStart int // where the log stood at the last PingUs
}

func (e *ejabberdPeer) Domain() string                   { return e.Ejabberd.Domain }
func (e *ejabberdPeer) VerifiesOverExistingStream() bool { return false }

func (e *ejabberdPeer) Log() string {
	l := e.Ejabberd.Log()
	if e.logStart <= len(l) {
		return l[e.logStart:]
	}
	return l
}

func (e *ejabberdPeer) PingUs(t *testing.T) {
	t.Helper()
	e.logStart = len(e.Ejabberd.Log())
	id := "ej-ping-" + strconv.FormatInt(e.n.Add(1), 10)
	ctx, cancel := ctlContext()
	defer cancel()
	raw := "<iq type='get' id='" + id + "' from='" + e.Domain() + "' to='" + ourDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"
	if err := e.SendStanza(ctx, e.Domain(), ourDomain, raw); err != nil {
		t.Fatal(err)
	}
}

func (e *ejabberdPeer) GotPong(t *testing.T, id string) {
	t.Helper()
	waitLog(t, e, "our pong", "Received XML on stream", "type='result' id='"+id+"'")
}

func (e *ejabberdPeer) Refused(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(waitLog(t, e, "a refused outgoing connection",
		"Failed to establish outbound s2s connection "+e.Domain()+" -> "+ourDomain, "authentication failed"))
}

// TestEjabberd runs every scenario against ejabberd, once per STARTTLS
// mode, with s2s_use_starttls set to match.
func TestEjabberd(t *testing.T) {
	for i, mode := range []string{"false", "optional", "required"} {
		t.Run(strconv.Itoa(i)+"-"+mode, func(t *testing.T) {
			ln := listenOurs(t)
			e := StartEjabberd(t, EjabberdConfig{
				Domain:  ejabberdDomain,
				TLS:     mode,
				CertPEM: leafFor(t, ejabberdDomain).PEM,
				Routes:  []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}},
			})
			o := startOurs(t, ln, mode, ejabberdDomain, e.Port)
			scenarios(t, o, &ejabberdPeer{Ejabberd: e}, mode)
		})
	}
}

// TestEjabberdSeparateStreams: ejabberd 23.01 has no XEP-0288, so with
// bidi and piggybacking on (our defaults) each direction keeps a stream of
// its own: stanzas flow both ways, our outgoing link is not on the stream
// ejabberd opened to us, and no bidi element crosses either stream.
func TestEjabberdSeparateStreams(t *testing.T) {
	ln := listenOurs(t)
	e := StartEjabberd(t, EjabberdConfig{
		Domain:  ejabberdDomain,
		TLS:     "optional",
		CertPEM: leafFor(t, ejabberdDomain).PEM,
		Routes:  []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}},
	})
	o := startOurs(t, ln, "optional", ejabberdDomain, e.Port)
	p := &ejabberdPeer{Ejabberd: e}
	o.send(t, "<iq type='get' id='sep-1' from='"+ourDomain+"' to='"+ejabberdDomain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	pong := o.deliveredMatching(t, "ejabberd's pong", func(s s2s.Stanza) bool { return s.ID == "sep-1" })
	if pong.Type != "result" {
		t.Fatalf("pong %s", pong.Raw)
	}
	p.PingUs(t)
	got := o.deliveredMatching(t, "ejabberd's ping", isPing)
	p.GotPong(t, got.ID)
	out, in := o.links(ejabberdDomain)
	if len(out) != 1 || len(in) != 1 {
		t.Fatalf("links: out %+v, in %+v", out, in)
	}
	if out[0].Stream == in[0].Stream {
		t.Errorf("both directions on stream %d; ejabberd has no bidi", out[0].Stream)
	}
	if strings.Contains(e.Log(), "urn:xmpp:bidi") {
		t.Errorf("ejabberd's log shows a bidi element:\n%s", e.Log())
	}
}
