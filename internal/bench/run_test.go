package bench

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the test binary be the child of the two-process runs.
func TestMain(m *testing.M) {
	ServePeerIfChild()
	os.Exit(m.Run())
}

// TestQuick runs every experiment with a few hundred stanzas: each must
// complete, without bounces, and fill its columns. The numbers themselves
// are not checked; this machine is too noisy for that.
func TestQuick(t *testing.T) {
	rep, err := Run(context.Background(), Quick())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) == 0 {
		t.Fatal("no rows")
	}
	for _, r := range rep.Rows {
		if math.IsNaN(r.Ours) {
			t.Errorf("%s: ours = %v", r.Name, r.Ours)
		}
		// A new link is timed against a raw connection's set-up too.
		if strings.HasPrefix(r.Name, "first stanza") && math.IsNaN(r.Raw) {
			t.Errorf("%s: raw = %v", r.Name, r.Raw)
		}
		// The host rows are one Manager against the raw load generator,
		// and measured against the raw echo.
		host := strings.HasPrefix(r.Name, "pings to one Manager")
		if host && (math.IsNaN(r.Raw) || r.Ours <= 0) {
			t.Errorf("%s: ours %v, raw %v", r.Name, r.Ours, r.Raw)
		}
		// Throughput and idle rows have a two-process figure, the others
		// (and the host rows, which have no second Manager) none.
		if want := (r.HigherBetter && !host) || strings.Contains(r.Name, " idle links, "); want == math.IsNaN(r.TwoProc) {
			t.Errorf("%s: two processes = %v", r.Name, r.TwoProc)
		}
	}
	var b bytes.Buffer
	if err := rep.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| messages, one link, TLS |", "| pings to one Manager from the raw load generator, window 100, TLS |", "| pings to one Manager from the raw load generator, window 100, TCP |"} {
		if !strings.Contains(b.String(), row) {
			t.Errorf("table lacks the row %s\n%s", row, b.String())
		}
	}
}

// TestServePeerBadSpec checks that a child given an unusable spec fails
// with an error instead of serving.
func TestServePeerBadSpec(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, spec := range []string{
		`{`,
		`{"parent":"nowhere"}`,
		`{"parent":"127.0.0.1:1","ca":"` + filepath.Join(dir, "missing") + `"}`,
		`{"parent":"127.0.0.1:1","ca":"` + ca + `"}`,
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var out bytes.Buffer
			if err := servePeer(spec, strings.NewReader(""), &out); err == nil {
				t.Errorf("servePeer(%s) = nil", spec)
			}
			if out.Len() != 0 {
				t.Errorf("servePeer(%s) announced %q", spec, out.String())
			}
		})
	}
}

// TestIdleOverFileLimit: an idle experiment that would need more
// descriptors than the process may open is left out with a note naming the
// limit, not attempted.
func TestIdleOverFileLimit(t *testing.T) {
	defer func(f func() int) { fileLimit = f }(fileLimit)
	fileLimit = func() int { return 150 }
	c := Quick()
	c.TwoProcess = true
	rows, notes, err := idle(context.Background(), nil, c, true, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !math.IsNaN(r.Ours) || !math.IsNaN(r.TwoProc) || !math.IsNaN(r.Raw) {
			t.Errorf("%s measured: ours %v, two processes %v, raw %v", r.Name, r.Ours, r.TwoProc, r.Raw)
		}
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "open-file limit of 150") || !strings.Contains(notes[1], "even with one end per process") {
		t.Errorf("notes %q", notes)
	}
}
