package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSharedNotPrinted is a host that logs its whole configuration every
// way it might: the secret must not be in any of the output.
func TestSharedNotPrinted(t *testing.T) {
	c, err := Parse("s2s.toml", []byte("[s2s]\nshared = \"do-not-print-me\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Shared) != "do-not-print-me" {
		t.Fatalf("Shared = %q", string(c.Shared))
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		fmt.Fprintf(&out, verb+"\n", c)
		fmt.Fprintf(&out, verb+"\n", c.Shared)
	}
	fmt.Fprintln(&out, c, c.Shared)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(js)
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("config", "s2s", c, "shared", c.Shared, "any", any(c.Shared))
	}
	for _, secret := range []string{"do-not-print-me", fmt.Sprintf("%x", "do-not-print-me")} {
		if strings.Contains(strings.ToLower(out.String()), secret) {
			t.Fatalf("the secret is in the output:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "[REDACTED]") {
		t.Fatalf("no placeholder in the output:\n%s", out.String())
	}
}
