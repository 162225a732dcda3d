package config

import (
	"errors"
	"strconv"
	"testing"
)

func TestMaxStanzaSize(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want int64
		is   error
		err  string
	}{
		{in: "", want: 1 << 20},
		{in: "max_stanza_size = 65536\n", want: 65536},
		{in: "max_stanza_size = \"infinity\"\n", want: 0},
		{in: "[general]\nhosts = [\"localhost\"]\n[s2s]\nmax_stanza_size = 1\n", want: 1},
		{in: "max_stanza_size = 0\n", is: ErrValue,
			err: `s2s.toml:1:19: s2s.max_stanza_size: 0 is not positive (want bytes, at least 1)`},
		{in: "max_stanza_size = -10\n", is: ErrValue,
			err: `s2s.toml:1:19: s2s.max_stanza_size: -10 is not positive (want bytes, at least 1)`},
		{in: "max_stanza_size = \"unlimited\"\n", is: ErrValue,
			err: `s2s.toml:1:19: s2s.max_stanza_size: unknown value "unlimited" (want a positive number of bytes or "infinity")`},
		{in: "max_stanza_size = 1.5\n", is: ErrType,
			err: `s2s.toml:1:19: s2s.max_stanza_size: want a positive number of bytes or "infinity", got a float`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c, err := Parse("s2s.toml", []byte(tc.in))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || !errors.Is(err, tc.is) {
					t.Fatalf("Parse error = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxStanzaSize != tc.want {
				t.Fatalf("MaxStanzaSize = %d, want %d", c.MaxStanzaSize, tc.want)
			}
		})
	}
}
