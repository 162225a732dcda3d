package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: it must never panic, and it
// must return either a configuration or an *Error.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "examples", "*.toml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"[s2s]\nuse_starttls = \"requird\"\n",
		"[[s2s.host_policy]]\nhost = \"a.example\"\npolicy = \"deny\"\n[[s2s.host_policy]]\nhost = \"A.example\"\n",
		"s2s.outgoing = {ip_versions = [[4], [6]], port = 1}\n",
		"address = [{host = \"xn--bcher-kva.example\", ip_address = \"fe80::1%eth0\", port = 65535}]\n",
		"[a]\n[[a.b]]\n[[a.b]]\nc.d = [{e = [1, [2]]}]\n",
		"outgoing.connection_timeout = \"infinity\"\n'quoted.key' = 1\n",
		"max_stanza_size = \"infinity\"\n[s2s]\nmax_stanza_size = 65536\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error %T %v is not an *Error", err, err)
			}
			return
		}
		if c.Shared == "" || c.Outgoing.Port == 0 || len(c.Outgoing.IPVersions) == 0 {
			t.Fatalf("Parse accepted %q into an incomplete configuration %+v", data, c)
		}
	})
}
