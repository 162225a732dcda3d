package domain

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for i, tc := range []struct {
		in, want string
		err      string
	}{
		{in: "example.org", want: "example.org"},
		{in: "Example.ORG", want: "example.org"},
		{in: "example.org.", want: "example.org"},
		{in: "Bücher.Example.", want: "xn--bcher-kva.example"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "XN--BCHER-KVA.example", want: "xn--bcher-kva.example"},
		{in: "localhost", want: "localhost"},
		{in: "", err: `"" is empty`},
		{in: ".", err: `"." is empty`},
		{in: "192.0.2.1", err: "is an IP address"},
		{in: "[::1]", err: "is an IP address"},
		{in: "exa mple.org", err: "invalid domain"},
		{in: "under_score.org", err: "invalid domain"},
		{in: "a..b", err: "invalid domain"},
		{in: strings.Repeat("a", 64) + ".org", err: "invalid domain"},
		{in: "-lead.org", err: "invalid domain"},
		{in: "\xb7", err: "not UTF-8"}, // found by FuzzNormalize
		{in: "a.\xff.org", err: "not UTF-8"},
		{in: "0.0.0..", err: "empty label"}, // found by FuzzNormalize
		{in: "example.org..", err: "empty label"},
		// DNS length: 253 bytes pass, 254 do not; a peer's megabyte is
		// refused before IDNA reads it, and not copied into the error.
		{in: strings.Repeat("a.", 126) + "b", want: strings.Repeat("a.", 126) + "b"},
		{in: strings.Repeat("a.", 126) + "bc", err: "invalid domain"},
		{in: strings.Repeat("a.", 1<<19), err: "(1048576 bytes)"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := Normalize(tc.in)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Normalize(%q) = %q, want error containing %q", tc.in, got, tc.err)
				}
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Normalize(%q) error = %v, want ErrInvalid containing %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNormalizeErrorClipped(t *testing.T) {
	for _, in := range []string{
		strings.Repeat("x", MaxInput+1),
		strings.Repeat("Ä", 200) + ".example",
		strings.Repeat("a", 500) + "..",
	} {
		_, err := Normalize(in)
		if err == nil || len(err.Error()) > 3*ClipLen+100 {
			t.Fatalf("Normalize of %d bytes: error of %d bytes", len(in), len(err.Error()))
		}
	}
}

func TestClip(t *testing.T) {
	for i, tc := range []struct{ in, want string }{
		{"a.test", `"a.test"`},
		{strings.Repeat("a", ClipLen), strconv.Quote(strings.Repeat("a", ClipLen))},
		{strings.Repeat("a", ClipLen+1), strconv.Quote(strings.Repeat("a", ClipLen)) + "…(65 bytes)"},
		// A cut never splits a character.
		{"a" + strings.Repeat("é", 40), strconv.Quote("a"+strings.Repeat("é", 31)) + "…(81 bytes)"},
		{"\x00'<", `"\x00'<"`},
	} {
		if got := Clip(tc.in); got != tc.want {
			t.Errorf("%d: Clip = %s, want %s", i, got, tc.want)
		}
	}
}

func TestUnicode(t *testing.T) {
	if got := Unicode("xn--bcher-kva.example"); got != "bücher.example" {
		t.Fatalf("Unicode = %q", got)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.org", "Bücher.Example.", "xn--", "", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		// Normal forms are fixed points.
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", s, n, n, again, err)
		}
	})
}

// slowNormalize is Normalize without its fast path.
func slowNormalize(name string) (string, error) {
	orig := name
	name = strings.TrimSuffix(name, ".")
	if name == "" || strings.HasSuffix(name, ".") {
		return "", errors.New("empty label in " + orig)
	}
	a, err := profile.ToASCII(name)
	if err != nil {
		return "", err
	}
	return strings.ToLower(a), nil
}

func TestCanonicalASCII(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want bool
	}{
		{"example.org", true},
		{"a-b.example", true},
		{"123.example", true},
		{"localhost", true},
		{"Example.org", false},
		{"example.org.", false},
		{"xn--bcher-kva.example", false},
		{"ab--cd.example", false},
		{"-a.example", false},
		{"a-.example", false},
		{"1.2.3.4", false},
		{"example.123", false},
		{"a..b", false},
		{"under_score.org", false},
		{strings.Repeat("a", 64) + ".org", false},
		{"", false},
		// The top label is checked after the loop, the others at their dot.
		{strings.Repeat("a", 63) + ".org", true},
		{"org." + strings.Repeat("a", 64), false},
		{"org." + strings.Repeat("a", 63), true},
		{"a.1b", true},
		{"a.bc--d", false},
		{"a.-b", false},
		{"a.b-", false},
		{"a.", false},
		{".a", false},
		{"a.B", false},
		{"a.b/", false},
		{strings.Repeat("a.", 126) + "a", true},
		{strings.Repeat("a.", 126) + "ab", false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := isCanonicalASCII(tc.in); got != tc.want {
				t.Fatalf("isCanonicalASCII(%q) = %v", tc.in, got)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { Normalize("chat.example.org") }); n != 0 {
		t.Errorf("Normalize of a canonical name allocates %v times", n)
	}
}

// FuzzCanonical: the fast path accepts only names that the full IDNA path
// returns unchanged.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"example.org", "a-b.c", "1.2.3.4", "xn--bcher-kva.example", "ab--c.d", "a.b1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !isCanonicalASCII(s) {
			return
		}
		got, err := slowNormalize(s)
		if err != nil || got != s {
			t.Fatalf("fast path accepts %q, full path gives %q, %v", s, got, err)
		}
	})
}

// BenchmarkNormalizeCanonical is the fast path with the two kinds of name
// a routed stanza carries (a Send checks both of its domains, a delivery
// its pair's): it runs about ten times per ping and answer.
func BenchmarkNormalizeCanonical(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Normalize("ping-target.example")
		Normalize("b.example")
	}
}
