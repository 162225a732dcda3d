package wire

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
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

// BenchmarkNextPingIDs is BenchmarkNextPing with an id of its own for
// each ping, as a server writes them: of a ping's envelope, only the id
// differs from the last ping's, but each element follows one of the other
// direction.
func BenchmarkNextPingIDs(b *testing.B) {
	var body []byte
	for i := range 64 {
		body = append(body, pingWithID(i)...)
	}
	benchNextBody(b, body, len(benchPing), 2)
}

// BenchmarkNextPings reads what one stream of the ping path carries:
// pings from one server to another, each with its own id.
func BenchmarkNextPings(b *testing.B) {
	var body []byte
	for i := range 64 {
		p := pingWithID(i)
		body = append(body, p[:strings.Index(p, "</iq>")+len("</iq>")]...)
	}
	benchNextBody(b, body, len(body)/64, 1)
}

// pingWithID is benchPing with the ids of ping i, eight hex digits.
func pingWithID(i int) string {
	id := fmt.Sprintf("%08x", uint32(i)*2654435761)
	return strings.ReplaceAll(benchPing, "id='p1'", "id='"+id+"'")
}

func benchNext(b *testing.B, stanzas string, per int) {
	benchNextBody(b, bytes.Repeat([]byte(stanzas), 64), len(stanzas), per)
}

// benchNextBody reads body over and over, per elements an op of size
// bytes.
func benchNextBody(b *testing.B, body []byte, size, per int) {
	r := NewReader(io.MultiReader(bytes.NewReader([]byte(testHeader)), &loopReader{data: body}), DefaultLimits)
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
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

// BenchmarkParseStanzaIDs is ParseStanza of pings that differ in their
// ids only, as a host sends them.
func BenchmarkParseStanzaIDs(b *testing.B) {
	var raws [][]byte
	for i := range 64 {
		p := pingWithID(i)
		raws = append(raws, []byte(p[:strings.Index(p, "</iq>")+len("</iq>")]))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := ParseStanza(raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
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
