package s2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// recorder keeps what each Manager of a test writes on each connection, in
// the order the writes happen, with the layer (plain or TLS) they go to. A
// Manager's writes of one connection are joined while nobody else writes,
// so that the transcript does not depend on how writes were batched.
//
// Only writes are recorded: each side's reads are the other side's writes,
// and recording a write before it reaches the socket keeps the order of
// the protocol's lockstep (a peer cannot answer what it has not read).
type recorder struct {
	mu    sync.Mutex
	conns map[[2]string]*transcript
	order []*transcript
}

type transcript struct {
	chunks []chunk
	layer  map[string]net.Conn // the current layer of each party
}

type chunk struct {
	party string
	tls   bool
	data  []byte
}

func newRecorder() *recorder { return &recorder{conns: map[[2]string]*transcript{}} }

// tap returns a Config.tap that records party's writes.
func (r *recorder) tap(party string) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		a, b := c.LocalAddr().String(), c.RemoteAddr().String()
		if a > b {
			a, b = b, a
		}
		key := [2]string{a, b}
		r.mu.Lock()
		defer r.mu.Unlock()
		t := r.conns[key]
		if t == nil {
			t = &transcript{layer: map[string]net.Conn{}}
			r.conns[key] = t
			r.order = append(r.order, t)
		}
		_, isTLS := c.(*tls.Conn)
		tc := &tapConn{Conn: c, r: r, t: t, party: party, tls: isTLS}
		t.layer[party] = tc
		return tc
	}
}

type tapConn struct {
	net.Conn
	r     *recorder
	t     *transcript
	party string
	tls   bool
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	// The plain layer under TLS carries TLS records (content types 20 to
	// 23), never XML: those are not part of the transcript.
	if c.t.layer[c.party] == c && len(p) > 0 && (p[0] < 20 || p[0] > 23) {
		ch := c.t.chunks
		if n := len(ch); n > 0 && ch[n-1].party == c.party && ch[n-1].tls == c.tls {
			ch[n-1].data = append(ch[n-1].data, p...)
		} else {
			c.t.chunks = append(ch, chunk{party: c.party, tls: c.tls, data: append([]byte(nil), p...)})
		}
	}
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

var (
	hexID  = regexp.MustCompile(`['"][0-9a-f]{32}['"]`)
	hexKey = regexp.MustCompile(`>[0-9a-f]{64}<`)
)

// text renders the transcripts, one element a line, up to the first
// </stream:stream> of each connection, with stream ids and dialback keys
// (random, and derived from the ids) replaced by names.
func (r *recorder) text() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	for i, t := range r.order {
		fmt.Fprintf(&b, "<!-- connection %d -->\n", i+1)
	chunks:
		for _, ch := range t.chunks {
			layer := "plain"
			if ch.tls {
				layer = "tls"
			}
			for _, el := range splitElements(ch.data) {
				fmt.Fprintf(&b, "<!-- %s %s --> %s\n", ch.party, layer, el)
				if el == "</stream:stream>" {
					// The first close is the protocol's; whether the
					// other side's answer is written before the
					// connection is gone is a race of the sockets.
					break chunks
				}
			}
		}
	}
	ids := map[string]string{}
	out := hexID.ReplaceAllFunc(b.Bytes(), func(quoted []byte) []byte {
		id, q := string(quoted[1:len(quoted)-1]), string(quoted[:1])
		name, ok := ids[id]
		if !ok {
			name = "ID" + strconv.Itoa(len(ids)+1)
			ids[id] = name
		}
		return []byte(q + name + q)
	})
	return hexKey.ReplaceAll(out, []byte(">KEY<"))
}

// splitElements cuts written bytes into top-level pieces: the XML
// declaration, the stream header, each element, the stream's close.
func splitElements(data []byte) []string {
	var out []string
	start, depth := 0, 0
	for i := 0; i < len(data); i++ {
		if data[i] != '<' {
			continue
		}
		end := bytes.IndexByte(data[i:], '>')
		if end < 0 {
			break
		}
		tag := data[i : i+end+1]
		i += end
		switch {
		case bytes.HasPrefix(tag, []byte("<?")),
			bytes.HasPrefix(tag, []byte("<stream:stream")),
			bytes.HasPrefix(tag, []byte("</stream:stream")):
		case bytes.HasPrefix(tag, []byte("</")):
			depth--
		case bytes.HasSuffix(tag, []byte("/>")):
		default:
			depth++
		}
		if depth == 0 {
			out = append(out, string(data[start:i+1]))
			start = i + 1
		}
	}
	if start < len(data) {
		out = append(out, string(data[start:]))
	}
	return out
}

// TestTranscripts pins the bytes of whole negotiations between two
// Managers: for each TLS mode and authentication method, a.test sends to
// b.test and b.test answers over a.test's stream (XEP-0288, on by
// default) or, with bidi off, over a link of its own, then both shut down.
// Each connection's writes, both directions, are compared with
// testdata/transcript-*.xml; -update rewrites them after a deliberate
// change, so that the change shows in review.
func TestTranscripts(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		direct   bool
		external bool
		noBidi   bool
	}{
		{mode: "false"},
		{mode: "false", noBidi: true},
		{mode: "required", noBidi: true},
		{mode: "required_trusted", external: true, noBidi: true},
		{mode: "optional"},
		{mode: "optional", external: true},
		{mode: "required"},
		{mode: "required", external: true},
		{mode: "required_trusted"},
		{mode: "required_trusted", external: true},
		{mode: "required", direct: true},
		{mode: "required", direct: true, external: true},
		{mode: "required_trusted", direct: true, external: true},
	} {
		name := tc.mode
		if tc.direct {
			name += "-direct"
		}
		if tc.external {
			name += "-external"
		} else {
			name += "-dialback"
		}
		if tc.noBidi {
			name += "-nobidi"
		}
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			acked := make(chan struct{}, 10)
			opts := func(party string) []nodeOpt {
				return []nodeOpt{withMode(tc.mode), withConfig(func(c *Config) {
					c.tap = rec.tap(party)
					c.DisableSASLExternal = !tc.external
					// Time stands still: the XEP-0198 <r/> comes
					// when a link drains, not when a timer fires.
					c.clock = newFakeClock()
					c.DisableBidi = tc.noBidi
					if party == "a" {
						c.answered = func(pair) { acked <- struct{}{} }
					}
				})}
			}
			var a, b *node
			if tc.direct {
				// Only a direct TLS target: b.test's plain port is
				// never dialled, by a.test or for a verification.
				a, b, _, _ = directNodes(t, opts("a"), opts("b"), func(_, d uint16) []srvRecord {
					return []srvRecord{{direct: true, priority: 1, port: d}}
				})
			} else {
				a, b = pairNodes(t, opts("a"), opts("b"))
			}
			a.send(msgAB)
			b.nextDelivered()
			// b acknowledges m1 (XEP-0198) from its reader; with bidi its
			// answer travels the same stream from b's link, so it waits
			// for the acknowledgement to keep the transcript in one order.
			select {
			case <-acked:
			case <-time.After(wait):
				t.Fatal("a's stanza was never acknowledged")
			}
			b.send(msgBA)
			a.nextDelivered()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			// Each side's <r/> is answered before anything closes, so
			// that the answers are in the transcript whatever the timing.
			waitAcked(t, a)
			waitAcked(t, b)
			if err := a.m.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			// a closed b's link to it with its last <a/>: b's link is
			// down, with nothing left unacknowledged, before b drains.
			for e := waitEvent(t, b, LinkDown); e.Link.Direction != Outgoing; e = waitEvent(t, b, LinkDown) {
			}
			if err := b.m.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			got := rec.text()
			file := filepath.Join("testdata", "transcript-"+name+".xml")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("transcript differs from %s (-update rewrites it):\n%s", file, lineDiff(want, got))
			}
		})
	}
}

// lineDiff shows the lines of got that differ from want, from the first
// difference on, marked - (want) and + (got).
func lineDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "from line %d:\n", i+1)
	for j := i; j < len(w) && j < i+8; j++ {
		fmt.Fprintf(&b, "- %s\n", w[j])
	}
	for j := i; j < len(g) && j < i+8; j++ {
		fmt.Fprintf(&b, "+ %s\n", g[j])
	}
	return b.String()
}
