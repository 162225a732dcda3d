package bench

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
)

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
	}
	var b bytes.Buffer
	if err := rep.Print(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| messages, one link, TLS |") {
		t.Errorf("table lacks the TLS message row:\n%s", b.String())
	}
}
