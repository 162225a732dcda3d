// Package wire is the s2s stream codec: it writes stream headers, closes and
// errors, and reads an incoming jabber:server stream (RFC 6120 §4) as a
// header followed by top-level elements.
//
// The package exists because mellium's Session cannot carry s2s streams as
// they are (its header writer cannot declare xmlns:db, and it refuses a
// `from` on an incoming s2s header); mellium is still used for its values,
// stream.Error above all.
//
// Reading is built for the hot path. Next first frames an element (finds
// its end, enforcing the size and depth limits while bytes arrive), then
// checks the complete bytes with a single-pass parser written for the
// common case, and hands the element on as Raw, a copy of the bytes
// received, never re-encoded. Anything that parser does not fully handle
// (non-ASCII names, references in envelope attributes, every error) goes
// to encoding/xml with namespace tracking of our own, which is the
// reference: the fast parser may only accept what encoding/xml accepts,
// with the same result, and a differential fuzz target holds it to that.
// ParseStanza works the same way for stanzas the host sends.
//
// Errors that the peer caused wrap a stream.Error with the condition RFC
// 6120 §4.9 names, which the caller sends with WriteError:
//
//	r := wire.NewReader(conn, wire.DefaultLimits)
//	h, err := r.ReadHeader()
//	...
//	for {
//		e, err := r.Next()
//		var se stream.Error
//		switch {
//		case err == io.EOF: // peer closed the stream
//		case errors.As(err, &se):
//			wire.WriteError(conn, se)
//		}
//		...
//	}
//
// Writing is plain: WriteHeader, WriteClose, WriteError and WriteFeatures
// produce their bytes in one Write each, and Writer coalesces stanzas into
// few writes.
package wire
