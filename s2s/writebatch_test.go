package s2s

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/wire"
)

// failAfter accepts limit bytes in whole writes, then fails every write.
type failAfter struct {
	limit int
	got   bytes.Buffer
}

var errWrite = errors.New("write failed")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.got.Len()+len(p) > f.limit {
		return 0, errWrite
	}
	return f.got.Write(p)
}

// TestWriteBatchCountsWholeStanzas: when a write fails, the stanzas counted
// done are exactly those whose bytes reached the connection.
func TestWriteBatchCountsWholeStanzas(t *testing.T) {
	stanza := func(size int) Stanza {
		return Stanza{Raw: []byte("<message>" + strings.Repeat("x", size-len("<message></message>")) + "</message>")}
	}
	small := make([]Stanza, 200) // 200 × 1000 bytes: several buffer fills
	for i := range small {
		small[i] = stanza(1000)
	}
	big := []Stanza{stanza(100), stanza(40000), stanza(100)}
	for i, tc := range []struct {
		batch []Stanza
		limit int
		done  int
		err   bool
	}{
		{small, 1 << 30, 200, false},
		{small, 0, 0, true},
		{small, 16000, 16, true}, // one buffer of 16 stanzas went out
		{small, 48000, 48, true}, // three buffers
		{big, 100, 1, true},      // the first, flushed before the big one
		{big, 40100, 2, true},    // the big one written through, the last lost
		{big, 1 << 30, 3, false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			f := &failAfter{limit: tc.limit}
			done, err := writeBatch(wire.NewWriter(f, 0), nil, tc.batch, nil)
			if done != tc.done || (err != nil) != tc.err {
				t.Fatalf("done %d, err %v; want %d, error %v", done, err, tc.done, tc.err)
			}
			var want []byte
			for _, s := range tc.batch[:done] {
				want = append(want, s.Raw...)
			}
			if !bytes.Equal(f.got.Bytes(), want) {
				t.Fatalf("connection got %d bytes, want the %d of the done stanzas", f.got.Len(), len(want))
			}
		})
	}
}

// TestSharedStreamTakeDuringWrite: two links write to one outgoing stream
// with XEP-0198. Link A's batch is recorded and its write is stuck (a
// half-open peer) when the stream dies and link B's down takes what the
// stream holds. The take waits for A's write to end: A's stanza, never
// written, stays A's to put back in its queue and is not also handed back
// by B (it would be written twice). Once taken, the stream takes no more
// batches.
func TestSharedStreamTakeDuringWrite(t *testing.T) {
	m := &Manager{clock: realClock{}}
	m.cfg.QueueLength = 100
	c1, c2 := net.Pipe()
	defer c2.Close()
	// The write deadline is what ends A's stuck write, as on a real
	// half-open connection.
	oc := &outConn{conn: c1, done: make(chan struct{}), writeTimeout: time.Second}
	oc.sm.Store(newSMOut(m))
	oc.refs.Store(2)
	a1 := seqStanza(t, "x.test", "b.test", "a1", 1, false)
	type result struct {
		done int
		err  error
	}
	wrote := make(chan result, 1)
	go func() {
		done, err := oc.writeBatch(nil, []Stanza{a1})
		wrote <- result{done, err}
	}()
	// One byte read: A's write has begun, its batch recorded; the rest of
	// it waits for a reader that never comes.
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	oc.closed.Store(true)                   // the stream died (a keepalive, another link's failure)
	taken := oc.unacked(m, pairOf(a1), nil) // B's down, counting a1 as its own
	r := <-wrote
	if r.err == nil {
		t.Fatal("A's write to a stuck peer succeeded")
	}
	requeued := 1 - r.done // what A's run puts back at its queue's head
	if len(taken)+requeued != 1 {
		t.Errorf("a1 taken by B %d times and requeued by A %d times: want once in all", len(taken), requeued)
	}
	done, err := oc.writeBatch(nil, []Stanza{seqStanza(t, "y.test", "b.test", "a2", 2, false)})
	if done != 0 || !errors.Is(err, net.ErrClosed) || oc.sm.Load().holding() != 0 {
		t.Errorf("a write after the take: done %d, err %v, stream holding %d", done, err, oc.sm.Load().holding())
	}
}
