package sm

import (
	"errors"
	"strconv"
	"testing"
)

func TestParse(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want Element
		err  bool
	}{
		{in: `<r xmlns='urn:xmpp:sm:3'/>`, want: Element{Kind: KindRequest}},
		{in: `<r xmlns="urn:xmpp:sm:3" />`, want: Element{Kind: KindRequest}},
		{in: `<a xmlns='urn:xmpp:sm:3' h='0'/>`, want: Element{Kind: KindAnswer, HasH: true}},
		{in: `<a h="4294967295" xmlns='urn:xmpp:sm:3'/>`, want: Element{Kind: KindAnswer, H: 1<<32 - 1, HasH: true}},
		// Prefixed, as the stream reader hands it on when the peer
		// declared the prefix on its header.
		{in: `<sm:a xmlns:sm='urn:xmpp:sm:3' h='7'/>`, want: Element{Kind: KindAnswer, H: 7, HasH: true}},
		{in: `<a xmlns='urn:xmpp:sm:3' h='&#49;2'/>`, want: Element{Kind: KindAnswer, H: 12, HasH: true}},
		{in: `<a xmlns='urn:xmpp:sm:3' h='1'></a>`, want: Element{Kind: KindAnswer, H: 1, HasH: true}},
		{in: `<enable xmlns='urn:xmpp:sm:3'/>`, want: Element{Kind: KindEnable}},
		{in: `<enable xmlns='urn:xmpp:sm:3' resume='true' max='600'/>`, want: Element{Kind: KindEnable, Resume: true, Max: 600}},
		{in: `<enabled xmlns='urn:xmpp:sm:3' id='x&amp;y' resume='1' location='[::1]:5222'/>`,
			want: Element{Kind: KindEnabled, ID: "x&y", Resume: true, Location: "[::1]:5222"}},
		{in: `<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`,
			want: Element{Kind: KindFailed, Condition: "unexpected-request"}},
		{in: `<failed xmlns='urn:xmpp:sm:3' h='3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></failed>`,
			want: Element{Kind: KindFailed, H: 3, HasH: true, Condition: "item-not-found"}},
		{in: `<failed xmlns='urn:xmpp:sm:3'/>`, want: Element{Kind: KindFailed}},

		{in: `<a xmlns='urn:xmpp:sm:3'/>`, err: true},
		{in: `<a xmlns='urn:xmpp:sm:3' h=''/>`, err: true},
		{in: `<a xmlns='urn:xmpp:sm:3' h='-1'/>`, err: true},
		{in: `<a xmlns='urn:xmpp:sm:3' h='4294967296'/>`, err: true},
		{in: `<a xmlns='urn:xmpp:sm:3' h='0x10'/>`, err: true},
		{in: `<a xmlns='urn:xmpp:sm:2' h='1'/>`, err: true},
		{in: `<a h='1'/>`, err: true},
		{in: `<resume xmlns='urn:xmpp:sm:3' h='1' previd='x'/>`, err: true},
		{in: `<enable xmlns='urn:xmpp:sm:3' resume='yes'/>`, err: true},
		{in: `<r xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/>`, err: true},
		{in: `<r xmlns='urn:xmpp:sm:3'>`, err: true},
		{in: `text<r xmlns='urn:xmpp:sm:3'/>`, err: true},
		{in: ``, err: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse(%s) = %+v, %v; want an error wrapping ErrMalformed", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestEncode pins the bytes we write; each parses back to what it means.
func TestEncode(t *testing.T) {
	for i, tc := range []struct {
		got  []byte
		want string
		el   Element
	}{
		{Feature, `<sm xmlns='urn:xmpp:sm:3'/>`, Element{}},
		{Enable, `<enable xmlns='urn:xmpp:sm:3'/>`, Element{Kind: KindEnable}},
		{Enabled, `<enabled xmlns='urn:xmpp:sm:3'/>`, Element{Kind: KindEnabled}},
		{Request, `<r xmlns='urn:xmpp:sm:3'/>`, Element{Kind: KindRequest}},
		{AppendAnswer(nil, 0), `<a xmlns='urn:xmpp:sm:3' h='0'/>`, Element{Kind: KindAnswer, HasH: true}},
		{AppendAnswer([]byte("x"), 1<<32-1), `x<a xmlns='urn:xmpp:sm:3' h='4294967295'/>`, Element{}},
		{AppendFailed(nil, "unexpected-request"), `<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`,
			Element{Kind: KindFailed, Condition: "unexpected-request"}},
		{AppendFailed(nil, ""), `<failed xmlns='urn:xmpp:sm:3'/>`, Element{Kind: KindFailed}},
		{NewSender[int](Policy{}).HandledCountTooHigh(nil, 5), `<handled-count-too-high xmlns='urn:xmpp:sm:3' h='5' send-count='0'/>`, Element{}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("wrote %s, want %s", tc.got, tc.want)
			}
			if tc.el.Kind == 0 {
				return
			}
			if el, err := Parse(tc.got); err != nil || el != tc.el {
				t.Fatalf("Parse(%s) = %+v, %v; want %+v", tc.got, el, err, tc.el)
			}
			if b := tc.el.Append(nil); string(b) != tc.want {
				t.Fatalf("Append wrote %s, want %s", b, tc.want)
			}
		})
	}
}

// TestParseFastAllocs: <r/> and <a/> as peers write them cost no
// allocation, since one comes with every acknowledged batch.
func TestParseFastAllocs(t *testing.T) {
	r := []byte(`<r xmlns='urn:xmpp:sm:3'/>`)
	a := []byte(`<a xmlns='urn:xmpp:sm:3' h='123456'/>`)
	if n := testing.AllocsPerRun(100, func() { Parse(r); Parse(a) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendAnswer(buf[:0], 123456) }); n != 0 {
		t.Fatalf("AppendAnswer: %v allocations", n)
	}
}
