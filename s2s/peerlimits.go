package s2s

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/wire"
)

// peerLimits are the limits a peer announced for what we send it
// (XEP-0478 <limits/> in the features of an outgoing stream). Zero fields
// were not announced.
type peerLimits struct {
	// maxBytes is the largest top-level element the peer accepts, in
	// bytes as it receives them. A larger stanza would end the stream with
	// policy-violation and take everything written after it down too, so
	// such a stanza is bounced alone instead (tooLarge).
	maxBytes int64
}

// errPeerLimits is wrapped when a peer's <limits/> is malformed; the
// stream goes on as if it had announced none.
var errPeerLimits = errors.New("s2s: malformed stream limits")

// parsePeerLimits reads a <limits xmlns='urn:xmpp:stream-limits:0'/>
// feature (its raw bytes, as wire.Feature.Raw holds them). A max-bytes
// that is not a positive decimal integer is an error; unknown children
// (idle-seconds, which says how long the peer lets a silent stream live and
// which KeepAlive stays well under by default) are skipped.
func parsePeerLimits(raw []byte) (peerLimits, error) {
	var lim peerLimits
	d := xml.NewDecoder(strings.NewReader(string(raw)))
	d.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errors.New("only UTF-8") }
	depth := 0
	var text []byte
	inMax, seen := false, false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || !seen {
				return peerLimits{}, fmt.Errorf("%w: incomplete", errPeerLimits)
			}
			return lim, nil
		}
		if err != nil {
			return peerLimits{}, fmt.Errorf("%w: %w", errPeerLimits, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if t.Name.Space != nsStreamLimits || t.Name.Local != "limits" {
					return peerLimits{}, fmt.Errorf("%w: <%s xmlns='%s'>", errPeerLimits, clipText(t.Name.Local), clipText(t.Name.Space))
				}
				seen = true
			case depth == 2 && t.Name.Space == nsStreamLimits && t.Name.Local == "max-bytes":
				if lim.maxBytes != 0 {
					return peerLimits{}, fmt.Errorf("%w: two <max-bytes/>", errPeerLimits)
				}
				inMax, text = true, text[:0]
			case depth > 8:
				return peerLimits{}, fmt.Errorf("%w: nested too deep", errPeerLimits)
			}
		case xml.CharData:
			if inMax && depth == 2 {
				if len(text)+len(t) > 32 {
					return peerLimits{}, fmt.Errorf("%w: <max-bytes/> too long", errPeerLimits)
				}
				text = append(text, t...)
			}
		case xml.EndElement:
			if inMax && depth == 2 {
				inMax = false
				v := strings.TrimSpace(string(text))
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n <= 0 || v[0] == '+' {
					return peerLimits{}, fmt.Errorf("%w: <max-bytes>%s</max-bytes> is not a positive integer", errPeerLimits, clipText(v))
				}
				lim.maxBytes = n
			}
			depth--
		}
	}
}

func clipText(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

// tooLarge reports whether s is over the peer's max-bytes, with the bounce
// text that names both sizes. It is on the path of every stanza written:
// one comparison when it fits.
func (lim peerLimits) tooLarge(s Stanza, remote string) (string, bool) {
	if lim.maxBytes <= 0 || int64(len(s.Raw)) <= lim.maxBytes {
		return "", false
	}
	return fmt.Sprintf("the stanza is %d bytes; %s accepts at most %d (its XEP-0478 max-bytes)", len(s.Raw), remote, lim.maxBytes), true
}

// tooLargeCondition is the bounce condition of a stanza over the peer's
// max-bytes: the peer's policy, which this stanza breaks alone.
const tooLargeCondition = stanza.PolicyViolation

// readLimits is the initiating side of the XEP-0478 entry: it keeps what
// the peer announced on the current stream (the last one's counts after a
// restart). A malformed <limits/> is logged and treated as none.
func (o *outStream) readLimits(f *wire.Feature) (flow, error) {
	o.limits = peerLimits{}
	if f == nil {
		return flowOn, nil
	}
	lim, err := parsePeerLimits(f.Raw)
	if err != nil {
		o.m.log.Info("s2s: ignored the peer's stream limits", "local", o.p.local, "remote", o.p.remote, "err", err)
		return flowOn, nil
	}
	o.limits = lim
	return flowOn, nil
}
