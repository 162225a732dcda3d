package wire

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// initialBufSize is the read buffer a Reader starts with and shrinks back to
// after a large element. It is small because every idle link holds one while
// blocked in Read, and the idle budget per link is tight.
const initialBufSize = 4096

// errTooLarge is returned by source.ReadByte when the element in progress
// would exceed the size limit. encoding/xml records it as its sticky error,
// which is how the Reader learns that the limit, not the peer's syntax, ended
// the parse.
var errTooLarge = errors.New("wire: element too large")

// source is the byte supplier behind the xml.Decoder. It exists so that the
// bytes of the element being parsed stay in one buffer: Raw is then a single
// copy of buf[mark:pos] instead of a re-encoding of tokens, and Buffered can
// report exactly what was read from the connection but not parsed yet.
//
// encoding/xml reads one byte at a time through io.ByteReader and never
// pushes bytes back into it (its one-byte unread is internal), so every byte
// handed out here is part of a token the decoder has seen or is building.
type source struct {
	src io.Reader
	buf []byte
	// pooled is buf's box from readPool while buf came from it, so that
	// giving it back allocates nothing.
	pooled *[]byte
	// short says the last read from src returned less than it asked for:
	// the peer had nothing more to say for the moment.
	short bool
	pos   int // next byte to hand out
	end   int // end of valid data in buf
	mark  int // start of the element being recorded; -1 when none
	stop  int // ReadByte's fast path runs while pos < stop

	// reads counts the reads from src that returned bytes (Reader.Reads);
	// another goroutine may look at it (the Manager's park sweep).
	reads atomic.Uint64
	// beforeRead, if set, runs before each read from src
	// (Reader.BeforeRead).
	beforeRead func()

	// wake, set by whoever interrupts the reader, says that the next read
	// timeout was asked for and is not an error; resume takes the request
	// and puts the connection's own deadline back (Reader.OnInterrupt,
	// interrupted).
	// awaiting says the read in progress is await's, between elements.
	wake     *atomic.Bool
	resume   func()
	awaiting bool
	// quiet: await came back for an interrupt, and nothing was read
	// since; the wait after it is in tiny rather than the pooled small
	// buffer (fillIdle).
	quiet bool
	tiny  [tinyReadSize]byte

	limit int64 // maximum bytes from mark; 0: none
	err   error // sticky error from src (io.EOF included)
	eof   bool  // src returned io.EOF
}

// newSource starts without a read buffer: the first read, like every read
// after the peer went quiet, waits in the small one.
func newSource(r io.Reader, limit int64) *source {
	return &source{src: r, mark: -1, limit: limit, short: true}
}

// newBytesSource reads from b without copying it.
func newBytesSource(b []byte) *source {
	return &source{buf: b, end: len(b), stop: len(b), mark: -1, err: io.EOF, eof: true}
}

// setMark starts recording at the current position.
func (s *source) setMark() {
	s.mark = s.pos
	s.resetStop()
}

// clearMark stops recording; the bytes before pos may be dropped.
func (s *source) clearMark() {
	s.mark = -1
	s.resetStop()
}

func (s *source) resetStop() {
	s.stop = s.end
	if s.mark >= 0 && s.limit > 0 {
		if m := int64(s.mark) + s.limit; m < int64(s.stop) {
			s.stop = int(m)
		}
	}
}

// recorded returns the bytes from mark to pos. It aliases the buffer.
func (s *source) recorded() []byte { return s.buf[s.mark:s.pos] }

// buffered is the number of bytes read from src and not yet handed out.
func (s *source) buffered() int { return s.end - s.pos }

// ReadByte implements io.ByteReader for encoding/xml.
func (s *source) ReadByte() (byte, error) {
	if s.pos < s.stop {
		b := s.buf[s.pos]
		s.pos++
		return b, nil
	}
	return s.readByteSlow()
}

func (s *source) readByteSlow() (byte, error) {
	for s.pos >= s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	if s.pos >= s.stop {
		// More data is at hand, so the stop was the size limit.
		return 0, errTooLarge
	}
	b := s.buf[s.pos]
	s.pos++
	return b, nil
}

// Read implements io.Reader. encoding/xml type-asserts its input to
// io.Reader when it meets an encoding declaration, so it must exist; the
// Reader refuses such declarations before any byte is read through it.
func (s *source) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := s.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// peek returns the next byte without consuming it.
func (s *source) peek() (byte, error) {
	for s.pos >= s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	return s.buf[s.pos], nil
}

// fill reads more bytes from src, keeping buf[mark:] (or nothing, without a
// mark) and growing the buffer when the kept part fills it.
func (s *source) fill() error {
	if s.err != nil {
		return s.err
	}
	if s.mark >= 0 && s.limit > 0 && int64(s.pos-s.mark) >= s.limit {
		return errTooLarge
	}
	keep := s.pos
	if s.mark >= 0 {
		keep = s.mark
	}
	if keep > 0 {
		// Slide the kept bytes to the front. When nothing is kept and the
		// buffer grew for a large element, return to the small size so an
		// idle link does not hold the peak.
		n := copy(s.buf, s.buf[keep:s.end])
		if n == 0 && len(s.buf) > initialBufSize {
			s.takeBuf()
		}
		s.pos -= keep
		s.end = n
		if s.mark >= 0 {
			s.mark = 0
		}
	}
	if s.end == 0 && s.short && s.src != nil && s.err == nil {
		return s.fillIdle()
	}
	if len(s.buf) == 0 {
		s.takeBuf()
	}
	if s.end == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.end])
		s.buf, s.pooled = nb, nil
	}
	if s.src == nil {
		s.err, s.eof = io.EOF, true
		return s.err
	}
	// Loop on (0, nil), which io.Reader permits; give up after a few as
	// bufio does, so a broken reader cannot spin us forever.
	for i := 0; i < 100; i++ {
		if s.beforeRead != nil {
			s.beforeRead()
		}
		n, err := s.src.Read(s.buf[s.end:])
		if err != nil && s.interrupted(err) {
			if n == 0 && s.awaiting {
				return errInterrupted
			}
			err = nil
		}
		s.short = s.end+n < len(s.buf)
		s.end += n
		if err != nil {
			s.err = err
			s.eof = errors.Is(err, io.EOF)
		}
		if n > 0 {
			s.reads.Add(1)
			s.resetStop()
			return nil
		}
		if err != nil {
			return err
		}
	}
	s.err = io.ErrNoProgress
	return s.err
}

// errInterrupted is what fill returns to await for the read timeout an
// Interrupt asked for; it is never kept in s.err.
var errInterrupted = errors.New("wire: interrupted")

// interrupted reports whether err is the read timeout that an interrupt
// asked for (Reader.OnInterrupt). It then calls resume, which takes the
// request and puts the connection's own read deadline back, so that
// reading can go on: here, in the middle of an element, or wherever
// await's caller goes on reading.
func (s *source) interrupted(err error) bool {
	if s.wake == nil || !s.wake.Load() || !isTimeout(err) {
		return false
	}
	s.resume()
	return true
}

// isTimeout reports whether err is a deadline's: net.Error's Timeout,
// without importing net (os.ErrDeadlineExceeded has the method too).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// idleReadSize is the buffer an idle source blocks in Read with. Most of
// a server's links are idle most of the time, each with a goroutine parked
// in Read; waiting in 512 bytes instead of the 4 KiB working buffer saves
// 3.5 KiB per link end, and a small stanza still arrives in one read.
const idleReadSize = 512

// tinyReadSize is the buffer a parked reader waits in (fillIdle): enough
// for a whitespace keepalive, an XEP-0198 <r/> or a stream's close in one
// read.
const tinyReadSize = 32

// readPool holds the working buffers of sources that went idle.
var readPool = sync.Pool{New: func() any {
	b := make([]byte, initialBufSize)
	return &b
}}

// takeBuf gives the source a working buffer from the pool.
func (s *source) takeBuf() {
	s.pooled = readPool.Get().(*[]byte)
	s.buf = *s.pooled
}

// releaseBuf gives the working buffer back; only call it with nothing
// buffered or kept. A buffer that grew for a large element is left to the
// collector, so the pool holds small ones only.
func (s *source) releaseBuf() {
	if s.pooled != nil && len(s.buf) == initialBufSize {
		readPool.Put(s.pooled)
	}
	s.buf, s.pooled = nil, nil
}

// fillIdle is fill when nothing is buffered and the last read came up
// short, so the next one will likely block until the peer speaks again: it
// gives the working buffer back and waits in the small one, then takes a
// working buffer for the bytes that arrived. Under load reads come back
// full and this path is not taken; when it is, the cost is a copy of at
// most idleReadSize bytes.
//
// The small buffer too comes from a pool and goes back once its bytes are
// copied, so that a source holds it only while it waits. A reader that an
// interrupt found quiet (its goroutine was parked) waits in the source's
// own tiny buffer instead, holding nothing from the pool: it is likely to
// stay quiet, and the cost of the few bytes is a second read for the rest
// of what the peer says, once per quiet spell.
func (s *source) fillIdle() (err error) {
	s.releaseBuf()
	s.pos, s.end = 0, 0
	if s.mark >= 0 {
		s.mark = 0
	}
	var box *[idleReadSize]byte
	var small []byte
	if s.quiet {
		small = s.tiny[:]
	} else {
		box = smallPool.Get().(*[idleReadSize]byte)
		small = box[:]
	}
	err = io.ErrNoProgress
	for i := 0; i < 100; i++ {
		if s.beforeRead != nil {
			s.beforeRead()
		}
		n, rerr := s.src.Read(small)
		if rerr != nil && s.interrupted(rerr) {
			if n == 0 && s.awaiting {
				err = errInterrupted
				break
			}
			rerr = nil
		}
		if rerr != nil {
			s.err = rerr
			s.eof = errors.Is(rerr, io.EOF)
		}
		if n > 0 {
			s.reads.Add(1)
			s.takeBuf()
			s.end = copy(s.buf, small[:n])
			s.short = n < len(small)
			s.quiet = false
			s.resetStop()
			err = nil
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if box != nil {
		smallPool.Put(box)
	}
	if err == io.ErrNoProgress {
		s.err = err
	}
	return err
}

// await skips whitespace between elements (keepalives) and waits until
// another byte is buffered or reading failed; the failure is kept in
// s.err, for the next read to return. It reports whether it came back
// because of an Interrupt instead, with nothing read and nothing kept.
func (s *source) await() (interrupted bool) {
	for {
		for s.pos < s.end && isSpaceByte(s.buf[s.pos]) {
			s.pos++
		}
		if s.pos < s.end {
			return false
		}
		s.awaiting = true
		err := s.fill()
		s.awaiting = false
		if err == errInterrupted {
			s.quiet = true
			return true
		}
		if err != nil {
			return false
		}
	}
}

// smallPool holds the buffers idle sources wait in.
var smallPool = sync.Pool{New: func() any { return new([idleReadSize]byte) }}

// settle gives the working buffer back when everything read has been
// handed out and the last read came back short: the next read would wait
// in the small buffer anyway (fillIdle), and a Reader that is never read
// again (the stream before a STARTTLS or SASL restart, kept by whoever
// held it) must not keep 4 KiB for nothing. A busy peer's reads come back
// full, and then the buffer stays.
func (s *source) settle() {
	if s.pos == s.end && s.mark < 0 && s.short && s.buf != nil && s.src != nil {
		s.releaseBuf()
		s.pos, s.end = 0, 0
		s.resetStop()
	}
}

// more makes at least one byte available at pos, reading if needed. It
// returns errTooLarge when the next byte would pass the size limit.
func (s *source) more() error {
	for s.pos >= s.end {
		if err := s.fill(); err != nil {
			return err
		}
	}
	if s.pos >= s.stop {
		return errTooLarge
	}
	return nil
}
