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
