package wire

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// benchStanza is a typical ~200-byte chat message.
const benchStanza = `<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='ktx72v49'><body>Art thou not Romeo, and a Montague? Wherefore art thou Romeo?</body></message>`

// loopReader replays a stream body forever so the benchmark measures
// parsing, not setup.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

// benchPing is a XEP-0199 ping and its answer, as the ping path reads them.
const benchPing = `<iq from='sender0.bench.example' to='receiver.bench.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>` +
	`<iq from='receiver.bench.example' to='sender0.bench.example' type='result' id='p1'/>`

func BenchmarkNext(b *testing.B) { benchNext(b, benchStanza, 1) }

// BenchmarkNextPing reads pings and their answers (two elements per op).
func BenchmarkNextPing(b *testing.B) { benchNext(b, benchPing, 2) }

func benchNext(b *testing.B, stanzas string, per int) {
	body := bytes.Repeat([]byte(stanzas), 64)
	r := NewReader(io.MultiReader(bytes.NewReader([]byte(testHeader)), &loopReader{data: body}), DefaultLimits)
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(stanzas)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for range per {
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "elements/s")
}

func BenchmarkParseStanza(b *testing.B) {
	raw := []byte(benchStanza)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStanza(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriter(b *testing.B) {
	w := NewWriter(io.Discard, 0)
	raw := []byte(benchStanza)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(raw); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIdleReader reports the heap an idle Reader holds after its
// header and one stanza: what every idle link pays for reading.
func BenchmarkIdleReader(b *testing.B) {
	const n = 1000
	in := []byte(testHeader + benchStanza)
	readers := make([]*Reader, n)
	b.ReportAllocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range readers {
			r := NewReader(bytes.NewReader(in), DefaultLimits)
			if _, err := r.ReadHeader(); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
			readers[i] = r
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/reader")
		clear(readers)
	}
}
