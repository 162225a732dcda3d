package s2s

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParsePeerLimits(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>10000</max-bytes><idle-seconds>600</idle-seconds></limits>`, want: 10000},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><idle-seconds>600</idle-seconds></limits>`, want: 0},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'/>`, want: 0},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes> 262144
</max-bytes><x xmlns='urn:example'><max-bytes>1</max-bytes></x></limits>`, want: 262144},
		{in: `<l:limits xmlns:l='urn:xmpp:stream-limits:0'><l:max-bytes>5</l:max-bytes></l:limits>`, want: 5},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>0</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>-5</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>+5</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>1e6</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>99999999999999999999</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>1</max-bytes><max-bytes>2</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:1'><max-bytes>1</max-bytes></limits>`, err: true},
		{in: `<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>1</max-bytes>`, err: true},
		{in: ``, err: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := parsePeerLimits([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, errPeerLimits) {
					t.Fatalf("parsePeerLimits(%s) = %+v, %v; want an error", tc.in, got, err)
				}
				return
			}
			if err != nil || got.maxBytes != tc.want {
				t.Fatalf("parsePeerLimits(%s) = %+v, %v; want max-bytes %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	lim := peerLimits{maxBytes: 10}
	if _, over := lim.tooLarge(Stanza{Raw: []byte("0123456789")}, "b.test"); over {
		t.Fatal("a stanza of exactly max-bytes is too large")
	}
	text, over := lim.tooLarge(Stanza{Raw: []byte("0123456789x")}, "b.test")
	if !over || !strings.Contains(text, "11 bytes") || !strings.Contains(text, "at most 10") || !strings.Contains(text, "b.test") {
		t.Fatalf("tooLarge = %q, %v", text, over)
	}
	if _, over := (peerLimits{}).tooLarge(Stanza{Raw: make([]byte, 1<<20)}, "b.test"); over {
		t.Fatal("no limit announced, yet too large")
	}
}

// FuzzParsePeerLimits: a peer's <limits/> never panics the parser, every
// error wraps errPeerLimits, and a limit it accepts is positive.
func FuzzParsePeerLimits(f *testing.F) {
	f.Add([]byte(`<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>10000</max-bytes><idle-seconds>600</idle-seconds></limits>`))
	f.Add([]byte(`<limits xmlns='urn:xmpp:stream-limits:0'/>`))
	f.Add([]byte(`<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>-1</max-bytes></limits>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		lim, err := parsePeerLimits(raw)
		if err != nil && !errors.Is(err, errPeerLimits) {
			t.Fatalf("error does not wrap errPeerLimits: %v", err)
		}
		if err == nil && lim.maxBytes < 0 {
			t.Fatalf("negative max-bytes %d from %q", lim.maxBytes, raw)
		}
	})
}
