package config

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
)

// TestCheckCertFile: a mode that uses TLS loads without certfile (the host
// may give its certificate in code), and CheckCertFile says what is missing,
// positioned at use_starttls when it was written; nil when a certificate is
// not needed or certfile is set.
func TestCheckCertFile(t *testing.T) {
	cert, err := filepath.Abs(filepath.Join("testdata", "examples", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		in   string
		edit func(*S2S) // after Parse
		err  string
	}{
		0: {in: "use_starttls = \"optional\"\n",
			err: `s2s.toml:1:16: s2s.use_starttls: mode "optional" needs a certificate (set s2s.certfile, give one in code with s2s.Config.Certificate, or use "false")`},
		2: {in: "[s2s]\nciphers = \"TLSv1.3\"\nuse_starttls = \"required_trusted\"\n",
			err: `s2s.toml:3:16: s2s.use_starttls: mode "required_trusted" needs a certificate (set s2s.certfile, give one in code with s2s.Config.Certificate, or use "false")`},
		3: {in: "use_starttls = \"false\"\n"},
		4: {in: "use_starttls = \"required\"\ncertfile = " + strconv.Quote(cert) + "\n"},
		// Set in code: no place to point at, but the key and the fix.
		5: {in: "", edit: func(c *S2S) { c.UseStartTLS = "required" },
			err: `s2s.use_starttls: mode "required" needs a certificate (set s2s.certfile, give one in code with s2s.Config.Certificate, or use "false")`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c, err := Parse("s2s.toml", []byte(tc.in))
			if err != nil {
				if err.Error() != tc.err {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if tc.edit != nil {
				tc.edit(&c)
			}
			err = c.CheckCertFile()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("CheckCertFile() = %v", err)
				}
				return
			}
			var ce *Error
			if err == nil || err.Error() != tc.err || !errors.Is(err, ErrCertFile) || !errors.As(err, &ce) {
				t.Fatalf("CheckCertFile() = %v, want %s", err, tc.err)
			}
		})
	}
	// Default has nothing to check.
	if err := Default().CheckCertFile(); err != nil {
		t.Errorf("Default().CheckCertFile() = %v", err)
	}
}
