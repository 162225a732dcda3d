package wire

import (
	"bytes"

	"mellium.im/xmpp/stream"
)

// Framing states.
const (
	frText  = iota // character data
	frLT           // after '<'
	frStart        // inside a start tag
	frEnd          // inside an end tag
	frBang         // after "<!", expecting "[CDATA["
	frCDATA        // inside a CDATA section
)

// frame advances the source past the element that starts at pos (a '<'),
// reading as much as it needs, and reports whether that element was the
// stream's close tag. It only finds where the element ends; checking it is
// the parsers' job, on the complete bytes. Splitting the two keeps the
// byte-at-a-time part, which must survive the connection delivering one
// byte per read, trivially resumable: its whole state is a few integers,
// so no byte is examined twice however the element arrives.
//
// Limits are enforced here, as the bytes arrive, so a peer cannot make us
// buffer past them: size through the source, depth on each start tag.
// Constructs that are refused whatever follows (comments, processing
// instructions, DTDs) are refused as soon as they are seen.
func (r *Reader) frame() (closing bool, err error) {
	s := r.src
	maxDepth := r.p.maxDepth
	state := frText
	depth := 0
	var quote, prev byte
	bang, brackets := 0, 0
	const cdata = "[CDATA["
	for {
		if s.pos >= s.stop {
			if err := s.more(); err != nil {
				return false, r.classify(err)
			}
		}
		buf := s.buf[:s.stop]
		for i := s.pos; i < len(buf); i++ {
			b := buf[i]
			switch state {
			case frText:
				// Most of an element is text and attribute values:
				// jump to the byte that matters instead of stepping.
				j := bytes.IndexByte(buf[i:], '<')
				if j < 0 {
					i = len(buf) - 1
					continue
				}
				i += j
				state = frLT
			case frLT:
				switch b {
				case '/':
					state = frEnd
					closing = depth == 0
				case '?':
					return false, streamErr(stream.RestrictedXML, "processing instruction")
				case '!':
					state, bang = frBang, 0
				default:
					if maxDepth > 0 && depth >= maxDepth {
						return false, streamErr(stream.PolicyViolation, "element nested deeper than %d", maxDepth)
					}
					state, prev = frStart, b
				}
			case frStart:
				switch {
				case quote != 0:
					j := bytes.IndexByte(buf[i:], quote)
					if j < 0 {
						i = len(buf) - 1
						continue
					}
					i += j
					quote = 0
					b = buf[i]
				case b == '\'' || b == '"':
					quote = b
				case b == '<':
					return false, streamErr(stream.NotWellFormed, "'<' inside a tag")
				case b == '>':
					state = frText
					if prev != '/' {
						if depth == 0 && r.isStreamTag(buf[s.mark:i+1]) {
							// It would never close: refuse it now.
							return false, streamErr(stream.BadFormat, "second stream header")
						}
						depth++
					} else if depth == 0 {
						s.pos = i + 1
						return false, nil
					}
				}
				prev = b
			case frEnd:
				switch b {
				case '>':
					depth--
					state = frText
					if depth <= 0 {
						s.pos = i + 1
						return closing, nil
					}
				case '<':
					return false, streamErr(stream.NotWellFormed, "'<' inside an end tag")
				}
			case frBang:
				if b != cdata[bang] {
					if bang == 0 {
						return false, streamErr(stream.RestrictedXML, "comment, DTD or entity declaration")
					}
					return false, streamErr(stream.NotWellFormed, "malformed CDATA section")
				}
				bang++
				if bang == len(cdata) {
					if depth == 0 {
						return false, streamErr(stream.BadFormat, "text between elements")
					}
					state, brackets = frCDATA, 0
				}
			case frCDATA:
				switch {
				case b == ']':
					brackets++
				case b == '>' && brackets >= 2:
					state = frText
				default:
					brackets = 0
				}
			}
		}
		s.pos = len(buf)
	}
}

// isStreamTag reports whether tag, a complete start tag, opens an element
// with the same qualified name as the stream header.
func (r *Reader) isStreamTag(tag []byte) bool {
	q := r.streamQName
	if len(tag) < len(q)+2 || string(tag[1:1+len(q)]) != q {
		return false
	}
	c := tag[1+len(q)]
	return c == '>' || isSpaceByte(c)
}
