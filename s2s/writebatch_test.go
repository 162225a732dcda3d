package s2s

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

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
