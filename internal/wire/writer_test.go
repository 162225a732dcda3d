package wire

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/stream"
)

// countWriter records each Write.
type countWriter struct {
	writes []string
	err    error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestWriter(t *testing.T) {
	for i, tc := range []struct {
		size   int
		writes []string
		want   []string // the Writes the connection sees, after a final Flush
	}{
		0: {size: 10, writes: []string{"abc", "def"}, want: []string{"abcdef"}},
		1: {size: 10, writes: []string{"abcdef", "ghijk"}, want: []string{"abcdef", "ghijk"}},
		2: {size: 4, writes: []string{"ab", "cdefgh", "i"}, want: []string{"ab", "cdefgh", "i"}},
		3: {size: 0, writes: []string{strings.Repeat("x", 100), "y"}, want: []string{strings.Repeat("x", 100) + "y"}},
		4: {size: 5, writes: nil, want: nil},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var c countWriter
			w := NewWriter(&c, tc.size)
			total := 0
			for _, s := range tc.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
				total += len(s)
			}
			flushed := 0
			for _, s := range c.writes {
				flushed += len(s)
			}
			if w.Buffered() != total-flushed {
				t.Fatalf("Buffered() = %d, want %d", w.Buffered(), total-flushed)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Buffered() != 0 || w.buf != nil {
				t.Fatal("buffer kept after Flush")
			}
			if strings.Join(c.writes, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("writes %q, want %q", c.writes, tc.want)
			}
		})
	}
}

func TestWriterStickyError(t *testing.T) {
	boom := errors.New("boom")
	c := countWriter{err: boom}
	w := NewWriter(&c, 0)
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v", err)
	}
	if _, err := w.Write([]byte("y")); !errors.Is(err, boom) {
		t.Fatalf("Write after failure: %v", err)
	}
}

func TestWriteHeader(t *testing.T) {
	for i, tc := range []struct {
		h    Header
		want string
	}{
		0: {Header{}, `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'>`},
		1: {Header{To: "b.example", From: "a.example", ID: "i'd<&>\"\t\n\r", Lang: "en", Version: "1.0"},
			`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' id='i&apos;d&lt;&amp;&gt;&quot;&#x9;&#xA;&#xD;' xml:lang='en' version='1.0'>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var c countWriter
			if err := WriteHeader(&c, tc.h); err != nil {
				t.Fatal(err)
			}
			if len(c.writes) != 1 || c.writes[0] != tc.want {
				t.Fatalf("got %q\nwant %q", c.writes, tc.want)
			}
			// What we write, we read back unchanged.
			r := NewReader(strings.NewReader(c.writes[0]), Limits{})
			h, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.h
			want.Dialback = true
			if want.Version == "" {
				want.Version = "1.0"
			}
			if h != want {
				t.Fatalf("read back %+v, want %+v", h, want)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	for i, e := range []stream.Error{
		stream.PolicyViolation,
		{Err: "host-unknown", Text: []struct{ Lang, Value string }{{"en", "no such host <here>"}}},
		stream.SeeOtherHostError(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5269}),
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var b bytes.Buffer
			b.WriteString(testHeader)
			if err := WriteError(&b, e); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(b.String(), "</stream:stream>") {
				t.Fatalf("stream not closed: %q", b.String())
			}
			r := NewReader(&b, Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			_, err := r.Next()
			var pe *PeerError
			if !errors.As(err, &pe) || pe.Err.Err != e.Err || len(pe.Err.Text) != len(e.Text) {
				t.Fatalf("read back %v, want %v", err, e)
			}
			for j := range e.Text {
				if pe.Err.Text[j] != e.Text[j] {
					t.Fatalf("text %+v, want %+v", pe.Err.Text[j], e.Text[j])
				}
			}
			if _, err := r.Next(); err != pe {
				// PeerError is sticky: the stream is over.
				t.Fatalf("after the error: %v", err)
			}
		})
	}
}

func TestWriteClose(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(testHeader)
	if err := WriteClose(&b); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&b, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || err.Error() != "EOF" {
		t.Fatalf("got %v, want io.EOF", err)
	}
}
