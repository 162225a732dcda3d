package wire

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"

	"mellium.im/xmpp/stream"
)

// Feature is one child of a received <stream:features>.
type Feature struct {
	// Name is the child's expanded name, e.g.
	// {urn:ietf:params:xml:ns:xmpp-tls starttls}.
	Name xml.Name

	// Required is true when the child has a <required/> child in its own
	// namespace, as RFC 6120 §5.3.1 has STARTTLS say that TLS is mandatory.
	Required bool

	// Raw is the child's bytes, a sub-slice of the features element's Raw.
	// Every feature in use declares its own namespace, so Raw parses alone;
	// a child that relied on a prefix declared on <stream:features> would
	// not, and Name is what callers should dispatch on.
	Raw []byte
}

// ParseFeatures returns the children of a <stream:features> element read by
// Next, in order. An element of another name is refused with a wrapped
// stream.BadFormat.
func ParseFeatures(e Element) ([]Feature, error) {
	if e.Name.Space != NSStream || e.Name.Local != "features" {
		return nil, streamErr(stream.BadFormat, "{%s}%s is not stream features", e.Name.Space, e.Name.Local)
	}
	d := xml.NewDecoder(bytes.NewReader(e.Raw))
	d.DefaultSpace = NSServer
	var out []Feature
	depth := 0
	var childStart int64
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			// Raw came from Next, which checked it; this is a bug or a
			// hand-made Element.
			return nil, streamErr(stream.NotWellFormed, "features: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 2:
				childStart = off
				out = append(out, Feature{Name: t.Name})
			case 3:
				f := &out[len(out)-1]
				if t.Name.Local == "required" && t.Name.Space == f.Name.Space {
					f.Required = true
				}
			}
		case xml.EndElement:
			if depth == 2 {
				out[len(out)-1].Raw = e.Raw[childStart:d.InputOffset()]
			}
			depth--
		}
	}
}

// WriteFeatures writes <stream:features> holding the given children, each
// a complete element that declares its own namespace, in one Write. With
// no children it writes an empty features element, which tells the peer
// that negotiation is done.
func WriteFeatures(w io.Writer, children ...[]byte) error {
	n := len("<stream:features></stream:features>")
	for _, c := range children {
		n += len(c)
	}
	b := make([]byte, 0, n)
	b = append(b, "<stream:features>"...)
	for _, c := range children {
		b = append(b, c...)
	}
	b = append(b, "</stream:features>"...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("wire: writing features: %w", err)
	}
	return nil
}
