package starttls

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
)

func TestParseMode(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{in: "false", want: False},
		{in: "optional", want: Optional},
		{in: "required", want: Required},
		{in: "required_trusted", want: RequiredTrusted},
		{in: "", err: true},
		{in: "true", err: true},
		{in: "Required", err: true},
		{in: "required-trusted", err: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if tc.err {
				if !errors.Is(err, ErrMode) {
					t.Fatalf("ParseMode(%q) = %v, %v; want ErrMode", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Fatalf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

// TestModeText checks the text form through a decoder that uses it, the way
// a config struct would.
func TestModeText(t *testing.T) {
	var v struct{ Mode Mode }
	if err := json.Unmarshal([]byte(`{"Mode":"required_trusted"}`), &v); err != nil || v.Mode != RequiredTrusted {
		t.Fatalf("Unmarshal = %v, %v", v.Mode, err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"Mode":"required_trusted"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"Mode":"yes"}`), &v); !errors.Is(err, ErrMode) {
		t.Fatalf("Unmarshal(yes) = %v, want ErrMode", err)
	}
	if _, err := Mode(7).MarshalText(); !errors.Is(err, ErrMode) {
		t.Fatalf("MarshalText(7) = %v, want ErrMode", err)
	}
	if s := Mode(7).String(); s != "Mode(7)" {
		t.Fatalf("String(7) = %q", s)
	}
}
