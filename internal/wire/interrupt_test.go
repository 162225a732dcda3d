package wire

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// past is a read deadline in the past: a blocked read returns at once.
var past = time.Unix(1, 0)

// interruptible is a Reader over one end of a pipe whose peer writes,
// made interruptible; resumes counts the calls to its resume function,
// which clears the deadline as a connection without one would.
type interruptible struct {
	r       *Reader
	conn    *sizedConn
	peer    net.Conn
	wake    atomic.Bool
	resumes atomic.Int32
}

func newInterruptible(t *testing.T) *interruptible {
	t.Helper()
	pc, p := net.Pipe()
	t.Cleanup(func() { pc.Close(); p.Close() })
	c := &sizedConn{Conn: pc}
	x := &interruptible{conn: c, peer: p}
	x.r = NewReader(c, DefaultLimits)
	x.r.OnInterrupt(&x.wake, func() {
		x.resumes.Add(1)
		x.wake.Store(false)
		c.SetReadDeadline(time.Time{})
	})
	go p.Write([]byte(testHeader))
	if _, err := x.r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	return x
}

// sizedConn records the size of the last Read's buffer.
type sizedConn struct {
	net.Conn
	asked atomic.Int64
}

func (c *sizedConn) Read(p []byte) (int, error) {
	c.asked.Store(int64(len(p)))
	return c.Conn.Read(p)
}

// interrupt is what the Manager's park sweep does.
func (x *interruptible) interrupt() {
	x.wake.Store(true)
	x.conn.SetReadDeadline(past)
}

// TestInterruptAwait: an interrupted Await returns true with nothing read
// and the deadline put back, and the Reader then reads the next element
// as if nothing had happened, on another goroutine too.
func TestInterruptAwait(t *testing.T) {
	x := newInterruptible(t)
	got := make(chan bool)
	go func() { got <- x.r.Await() }()
	x.interrupt()
	if !<-got {
		t.Fatal("Await returned false after an interrupt")
	}
	if n := x.resumes.Load(); n != 1 {
		t.Fatalf("resume called %d times, want 1", n)
	}
	if x.wake.Load() {
		t.Fatal("the request is still pending after it was taken")
	}
	msg := `<message from='a.example' to='b.example'><body>hi</body></message>`
	// A reader interrupted for being quiet waits in its own few bytes;
	// the pipe's Write returns once that read took them, and the rest
	// goes to the next read.
	go x.peer.Write([]byte(msg))
	done := make(chan error)
	go func() {
		if x.r.Await() {
			done <- errors.New("interrupted again")
			return
		}
		e, err := x.r.Next()
		if err == nil && string(e.Raw) != msg {
			err = errors.New("wrong element: " + string(e.Raw))
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := x.r.Reads(); got != 3 { // header, the tiny read, the rest
		t.Fatalf("Reads() = %d, want 3", got)
	}
	// Having read, it waits in the pooled small buffer again (the
	// goroutine then waits to hand over Await's result: no other read).
	got2 := make(chan bool)
	go func() { got2 <- x.r.Await() }()
	x.peer.Write([]byte("<b/>"))
	if n := x.conn.asked.Load(); n != idleReadSize {
		t.Fatalf("waited in %d bytes after reading, want %d", n, idleReadSize)
	}
	if <-got2 {
		t.Fatal("interrupted without a request")
	}
}

// TestInterruptForgets: a Reader interrupted for being quiet lets go of
// the last stanzas' from, to and template, which it keeps while busy to
// compare the next ones with, and reads the next stanzas as before.
func TestInterruptForgets(t *testing.T) {
	x := newInterruptible(t)
	msg := `<iq from='a.example' to='b.example' type='get' id='1'/>`
	go x.peer.Write([]byte(msg + msg + msg))
	for range 3 {
		if _, err := x.r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if x.r.f.last[envFrom] == "" || x.r.f.tmpl == nil {
		t.Fatalf("after three pings: last %q, template %v", x.r.f.last, x.r.f.tmpl)
	}
	got := make(chan bool)
	go func() { got <- x.r.Await() }()
	x.interrupt()
	if !<-got {
		t.Fatal("Await returned false after an interrupt")
	}
	if x.r.f.last != [2]string{} || x.r.f.tmpl != nil {
		t.Fatalf("interrupted: last %q, template %v", x.r.f.last, x.r.f.tmpl)
	}
	go x.peer.Write([]byte(msg))
	e, err := x.r.Next()
	if err != nil || e.From != "a.example" || e.To != "b.example" || e.Type != "get" || e.ID != "1" {
		t.Fatalf("after the interrupt: %+v, %v", e, err)
	}
}

// TestInterruptedWaitsSmall: the wait that follows an interrupt, on the
// goroutine the reader goes on with, holds no pooled buffer: it reads
// into the source's own few bytes.
func TestInterruptedWaitsSmall(t *testing.T) {
	x := newInterruptible(t)
	got := make(chan bool)
	go func() { got <- x.r.Await() }()
	x.interrupt()
	if !<-got {
		t.Fatal("Await returned false after an interrupt")
	}
	go func() { got <- x.r.Await() }()
	// The Write returns once the reader read it; the goroutine then
	// waits to hand over Await's result, reading nothing more.
	x.peer.Write([]byte("<a/>"))
	if n := x.conn.asked.Load(); n != tinyReadSize {
		t.Fatalf("the wait after an interrupt read into %d bytes, want %d", n, tinyReadSize)
	}
	if <-got {
		t.Fatal("interrupted without a request")
	}
}

// TestInterruptMidElement: an interrupt that comes while the Reader waits
// for the rest of an element is taken (resume) and the element is read
// whole; the Reader does not report it.
func TestInterruptMidElement(t *testing.T) {
	x := newInterruptible(t)
	msg := `<message from='a.example' to='b.example'><body>hi</body></message>`
	done := make(chan error)
	go func() {
		e, err := x.r.Next()
		if err == nil && string(e.Raw) != msg {
			err = errors.New("wrong element: " + string(e.Raw))
		}
		done <- err
	}()
	// The pipe's Write returns once the Reader took the bytes, so the
	// Reader is inside the element when the interrupt comes; a pipe read
	// with the deadline past fails before it takes what is written, so
	// the rest can only arrive after resume.
	if _, err := x.peer.Write([]byte(msg[:20])); err != nil {
		t.Fatal(err)
	}
	x.interrupt()
	if _, err := x.peer.Write([]byte(msg[20:])); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := x.resumes.Load(); n != 1 {
		t.Fatalf("resume called %d times, want 1", n)
	}
}

// TestTimeoutNotAsked: a deadline that passes without a request is the
// connection's error, from Await (false) and then Next, and stays.
func TestTimeoutNotAsked(t *testing.T) {
	x := newInterruptible(t)
	x.conn.SetReadDeadline(past)
	if x.r.Await() {
		t.Fatal("Await reported an interrupt nobody asked for")
	}
	_, err := x.r.Next()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Next: %v, want the deadline's error", err)
	}
	if _, err2 := x.r.Next(); !errors.Is(err2, os.ErrDeadlineExceeded) {
		t.Fatalf("second Next: %v, want the same error", err2)
	}
	if n := x.resumes.Load(); n != 0 {
		t.Fatalf("resume called %d times for a timeout not asked for", n)
	}
}

// TestInterruptSharedAcrossReaders: a request made for a stream's reader
// that it did not take (it was done reading: a restart) is taken by the
// next Reader of the connection that shares the flag, not turned into an
// error there.
func TestInterruptSharedAcrossReaders(t *testing.T) {
	x := newInterruptible(t)
	x.interrupt() // nobody is reading: the old Reader never sees it
	r2 := NewReader(x.conn, DefaultLimits)
	r2.OnInterrupt(&x.wake, func() {
		x.resumes.Add(1)
		x.wake.Store(false)
		x.conn.SetReadDeadline(time.Time{})
	})
	go x.peer.Write([]byte(testHeader))
	if _, err := r2.ReadHeader(); err != nil {
		t.Fatalf("the next stream's header: %v", err)
	}
	if n := x.resumes.Load(); n != 1 {
		t.Fatalf("resume called %d times, want 1", n)
	}
}
