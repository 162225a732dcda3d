package wire

import (
	"io"
	"strings"
	"testing"
)

// stepReader hands out one chunk per Read and tells the test how large a
// buffer each Read was given, before it blocks for the chunk.
type stepReader struct {
	chunks chan string
	asked  chan int
}

func (r *stepReader) Read(p []byte) (int, error) {
	r.asked <- len(p)
	c, ok := <-r.chunks
	if !ok {
		return 0, io.EOF
	}
	if len(c) > len(p) {
		panic("chunk larger than the read")
	}
	return copy(p, c), nil
}

// TestIdleRead checks that a Reader waiting for a quiet peer holds no
// working buffer and reads into the small one, and that a read which came
// back full (the peer is busy) goes on in the working buffer.
func TestIdleRead(t *testing.T) {
	msg := `<message to='b.example' from='a.example'><body>hi</body></message>`
	// A first chunk that fills the small buffer, ending inside a stanza.
	full := msg + strings.Repeat(" ", idleReadSize-len(msg)-10)
	full += msg[:10]
	steps := []struct {
		chunk     string
		wantAsked int  // buffer size of the Read that receives chunk
		idle      bool // no working buffer while that Read blocks
	}{
		{chunk: testHeader, wantAsked: idleReadSize, idle: true},
		{chunk: msg, wantAsked: idleReadSize, idle: true},
		{chunk: full, wantAsked: idleReadSize, idle: true},
		// The peer is busy: the rest of the stanza is read into the
		// working buffer, after the 10 bytes kept.
		{chunk: msg[10:], wantAsked: initialBufSize - 10},
		{chunk: msg, wantAsked: idleReadSize, idle: true},
	}
	sr := &stepReader{chunks: make(chan string), asked: make(chan int)}
	r := NewReader(sr, Limits{})
	got := make(chan error, 1)
	go func() {
		if _, err := r.ReadHeader(); err != nil {
			got <- err
			return
		}
		for {
			e, err := r.Next()
			if err != nil {
				got <- err
				return
			}
			if string(e.Raw) != msg {
				got <- io.ErrUnexpectedEOF
				return
			}
			got <- nil
		}
	}()
	for i, s := range steps {
		asked := <-sr.asked
		if asked != s.wantAsked {
			t.Fatalf("step %d: Read of %d bytes, want %d", i, asked, s.wantAsked)
		}
		if s.idle && r.src.buf != nil {
			t.Fatalf("step %d: an idle Reader holds a %d-byte buffer", i, len(r.src.buf))
		}
		sr.chunks <- s.chunk
		if i > 0 { // every chunk after the header completes one stanza
			if err := <-got; err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
	}
	<-sr.asked
	close(sr.chunks)
	if err := <-got; err == nil {
		t.Fatal("no error at the end of the stream")
	}
}

// TestSettledReaderHoldsNothing: once everything read has been handed out
// and the last read came back short, a Reader holds no buffer even before
// it reads again, so one that is never read again (the stream before a
// STARTTLS or SASL restart) keeps nothing.
func TestSettledReaderHoldsNothing(t *testing.T) {
	msg := `<message to='b.example' from='a.example'><body>hi</body></message>`
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(testHeader + msg)) // and nothing more: the connection stays open
	r := NewReader(pr, DefaultLimits)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if r.src.buf == nil {
		t.Fatal("the stanza read with the header is not buffered")
	}
	e, err := r.Next()
	if err != nil || string(e.Raw) != msg {
		t.Fatalf("got %q, %v", e.Raw, err)
	}
	if r.src.buf != nil {
		t.Fatalf("a settled Reader holds a %d-byte buffer", len(r.src.buf))
	}
}
