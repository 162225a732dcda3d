package starttls

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

func TestLoadCertFile(t *testing.T) {
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.Leaf(testcert.Options{DNSNames: []string{"a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Leaf(testcert.Options{DNSNames: []string{"b.example"}})
	if err != nil {
		t.Fatal(err)
	}
	certOnly := a.PEM[:bytes.Index(a.PEM, []byte("-----BEGIN PRIVATE KEY"))]
	keyOnly := a.PEM[bytes.Index(a.PEM, []byte("-----BEGIN PRIVATE KEY")):]
	for i, tc := range []struct {
		data    []byte // nil: no file
		err     string
		errIs   error
		chain   int
		keyText bool // the error must not contain key material
	}{
		{data: a.PEM, chain: 2},
		{data: nil, errIs: fs.ErrNotExist},
		{data: []byte("not pem"), err: "no CERTIFICATE block"},
		{data: certOnly, err: "no PRIVATE KEY block"},
		{data: keyOnly, err: "no CERTIFICATE block"},
		{data: append(append([]byte{}, certOnly...), b.PEM[bytes.Index(b.PEM, []byte("-----BEGIN PRIVATE KEY")):]...), err: "private key does not match", keyText: true},
		{data: append(append([]byte{}, a.PEM...), keyOnly...), err: "2 private keys"},
		{data: []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), err: "encrypted"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cert.pem")
			if tc.data != nil {
				if err := os.WriteFile(path, tc.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f, err := LoadCertFile(path)
			if tc.err == "" && tc.errIs == nil {
				if err != nil {
					t.Fatal(err)
				}
				cert, err := f.Certificate()
				if err != nil || len(cert.Certificate) != tc.chain || cert.Leaf == nil || f.Path() != path || f.Err() != nil {
					t.Fatalf("Certificate = %v, %v", cert, err)
				}
				return
			}
			if !errors.Is(err, ErrCertFile) || (tc.errIs != nil && !errors.Is(err, tc.errIs)) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("LoadCertFile = %v, want ErrCertFile containing %q", err, tc.err)
			}
			if tc.keyText && strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error text shows key material: %v", err)
			}
		})
	}
}

// clock is a manual clock for CertFile's reload check.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestCertFileReload: a changed file is picked up on the next check, a
// broken one leaves the old certificate in place, and Reload forces a read.
func TestCertFileReload(t *testing.T) {
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([]*testcert.Leaf, 3)
	for i := range leaves {
		if leaves[i], err = ca.Leaf(testcert.Options{DNSNames: []string{"v" + strconv.Itoa(i) + ".example"}}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "cert.pem")
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Distinct modification times make the change visible even on file
		// systems with coarse timestamps and when the size is unchanged.
		mtime = mtime.Add(time.Minute)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	name := func(f *CertFile) string {
		t.Helper()
		c, err := f.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.DNSNames[0]
	}

	write(leaves[0].PEM)
	clk := &clock{t: time.Unix(1_000_000, 0)}
	f, err := LoadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.now = clk.now
	f.checked = clk.now()

	write(leaves[1].PEM)
	if got := name(f); got != "v0.example" {
		t.Fatalf("within the check interval: %s, want v0.example", got)
	}
	clk.advance(time.Second)
	if got := name(f); got != "v1.example" {
		t.Fatalf("after the change: %s, want v1.example", got)
	}

	write([]byte("-----BEGIN CERTIFICATE-----\nhalf written"))
	clk.advance(time.Second)
	if got := name(f); got != "v1.example" {
		t.Fatalf("after a broken write: %s, want v1.example kept", got)
	}
	if !errors.Is(f.Err(), ErrCertFile) {
		t.Fatalf("Err() = %v, want ErrCertFile", f.Err())
	}
	if err := f.Reload(); !errors.Is(err, ErrCertFile) {
		t.Fatalf("Reload of a broken file = %v", err)
	}

	write(leaves[2].PEM)
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := name(f); got != "v2.example" || f.Err() != nil {
		t.Fatalf("after Reload: %s, Err %v", got, f.Err())
	}
}
