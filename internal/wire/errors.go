package wire

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/stream"
)

// Errors the Reader returns that are not stream errors to send: the peer has
// already gone, or the caller misused the package.
var (
	// ErrUnexpectedEOF means the connection ended before </stream:stream>,
	// either inside an element or between two. The peer vanished: nothing
	// can be sent back, and whatever it was sending is lost. It matches
	// io.ErrUnexpectedEOF too.
	ErrUnexpectedEOF = fmt.Errorf("wire: connection ended before the stream was closed: %w", io.ErrUnexpectedEOF)

	// ErrHeaderRead is returned by ReadHeader when called twice on one
	// Reader. A restarted stream (after STARTTLS or SASL) needs a new Reader,
	// since its bytes come from a different connection layer.
	ErrHeaderRead = errors.New("wire: stream header already read")

	// ErrNoHeader is returned by Next before ReadHeader succeeded.
	ErrNoHeader = errors.New("wire: stream header not read")

	// ErrBadStanza is wrapped by every ParseStanza error: the bytes are not
	// exactly one well-formed message, presence or iq element.
	ErrBadStanza = errors.New("wire: not a stanza")
)

// PeerError is returned by Reader.Next when the peer sent a <stream:error>.
// The stream is over: the peer closes it after the error, and answering with
// a stream error of our own would be wrong.
//
// PeerError deliberately does not unwrap to a stream.Error, so that code
// which sends any stream.Error it finds in an error chain (errors.As) does not
// echo the peer's condition back to it. Use errors.As(err, &*PeerError) to
// reach the condition.
type PeerError struct {
	// Err is the condition and text the peer sent.
	Err stream.Error
}

// Error returns the condition and, when the peer gave one, its text.
func (e *PeerError) Error() string {
	var b strings.Builder
	b.WriteString("wire: peer sent stream error ")
	b.WriteString(e.Err.Err)
	for _, t := range e.Err.Text {
		b.WriteString(": ")
		b.WriteString(t.Value)
	}
	return b.String()
}

// streamErr wraps a stream condition with a detail for logs. The detail is
// built from our own knowledge (never from secrets); errors.As(err,
// &stream.Error{}) recovers the condition to send to the peer.
func streamErr(cond stream.Error, format string, args ...any) error {
	return fmt.Errorf("wire: "+format+": %w", append(args, cond)...)
}
