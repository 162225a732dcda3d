package interop

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/xmpp-s2s/federation/s2s"
)

// ErrShowFormat is wrapped when the output of `prosodyctl shell s2s show`
// is not the table this package asked for.
var ErrShowFormat = errors.New("interop: unexpected s2s show output")

// ProsodySession is one s2s session as Prosody itself reports it in
// `prosodyctl shell s2s show`: Prosody's side of a link, to compare with
// what our Manager's Links() says about the same link.
type ProsodySession struct {
	Local  string // Prosody's domain
	Remote string // the peer's domain
	// Dir is "-->" for Prosody's outgoing sessions, "<--" for incoming
	// ones and "<->" for bidirectional ones (XEP-0288).
	Dir string
	// Security is the TLS version ("TLSv1.3"), "secure" or "insecure".
	Security string
	// SASL is mod_saslauth's state of SASL EXTERNAL on the session:
	// "Succeeded", "Failed", "Attempting", "Offered" or "" when it was
	// never tried.
	SASL string
	// Dialback is "Completed" when the session was authenticated by
	// dialback, "Not used" when it was authenticated otherwise, and
	// "Initiated" or "Not initiated" while it is not authenticated yet.
	Dialback string
	// SNI is the name an incoming session asked for in its TLS
	// ClientHello; ALPN is the protocol negotiated on the session's TLS
	// connection ("xmpp-server" or "").
	SNI, ALPN string
}

// Auth says how the session was authenticated, in the terms of
// s2s.LinkInfo.Auth; the zero Auth when Prosody does not consider it
// authenticated.
func (s ProsodySession) Auth() s2s.Auth {
	switch {
	case s.SASL == "Succeeded":
		return s2s.AuthSASLExternal
	case s.Dialback == "Completed":
		return s2s.AuthDialback
	}
	return 0
}

// Incoming reports whether the peer opened the session to Prosody.
func (s ProsodySession) Incoming() bool { return s.Dir == "<--" }

// showColumns are the columns asked of `s2s show`, in order. Including
// "host" keeps Prosody from grouping the table by local host.
var showColumns = []struct{ name, title string }{
	{"host", "Host"},
	{"dir", "Dir"},
	{"remote", "Remote"},
	{"secure", "Security"},
	{"s2s_sasl", "SASL"},
	{"dialback", "Dialback"},
	{"sni", "SNI"},
	{"alpn", "ALPN"},
}

// S2SSessions asks Prosody for its s2s sessions with peer (all of them when
// peer is empty) and parses its answer.
func (p *Prosody) S2SSessions(ctx context.Context, peer string) ([]ProsodySession, string, error) {
	cols := make([]string, len(showColumns))
	for i, c := range showColumns {
		cols[i] = c.name
	}
	// The shell passes every argument as a Lua string: an empty one would
	// match no session, so "all" is a nil argument, which the command-line
	// form cannot express; filtering here is simpler.
	out, err := p.Shell(ctx, "s2s", "show", p.Domain, strings.Join(cols, " "))
	if err != nil {
		return nil, out, err
	}
	all, err := ParseS2SShow(out)
	if err != nil {
		return nil, out, err
	}
	var ss []ProsodySession
	for _, s := range all {
		if peer == "" || s.Remote == peer {
			ss = append(ss, s)
		}
	}
	return ss, out, nil
}

// ParseS2SShow parses the table `prosodyctl shell s2s show` prints with the
// columns host, dir, remote, secure, s2s_sasl, dialback, sni and alpn, as
// Prosody 0.12 formats it: a title row, then one row per session, cells
// separated by " | " and padded with spaces. Lines before the title row
// and the closing summary ("N s2s connections shown") are skipped.
func ParseS2SShow(out string) ([]ProsodySession, error) {
	var (
		ss     []ProsodySession
		titled bool
	)
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		// Cells are joined with " | " and padded; no value Prosody prints
		// in these columns contains "|", and splitting on it alone also
		// copes with a cell that is empty and unpadded.
		cells := strings.Split(line, "|")
		if len(cells) != len(showColumns) {
			if titled && strings.TrimSpace(line) != "" && !strings.Contains(line, "s2s connections shown") {
				return nil, fmt.Errorf("%w: row %q has %d cells, want %d", ErrShowFormat, line, len(cells), len(showColumns))
			}
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !titled {
			for i, c := range showColumns {
				if cells[i] != c.title {
					return nil, fmt.Errorf("%w: column %d is %q, want %q", ErrShowFormat, i+1, cells[i], c.title)
				}
			}
			titled = true
			continue
		}
		s := ProsodySession{
			Local: cells[0], Dir: cells[1], Remote: cells[2], Security: cells[3],
			SASL: cells[4], Dialback: cells[5], SNI: cells[6], ALPN: cells[7],
		}
		switch s.Dir {
		case "-->", "<--", "<->":
		default:
			return nil, fmt.Errorf("%w: direction %q in %q", ErrShowFormat, s.Dir, line)
		}
		ss = append(ss, s)
	}
	if !titled {
		return nil, fmt.Errorf("%w: no title row in %q", ErrShowFormat, out)
	}
	return ss, nil
}
