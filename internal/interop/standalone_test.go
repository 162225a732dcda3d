package interop

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestStandalone checks the testing.TB that starts peers outside go test:
// Fatal and Skip end the function and make Do fail, cleanups run last
// first at Close, and temporary directories are gone afterwards.
func TestStandalone(t *testing.T) {
	for i, c := range []struct {
		body    func(t testing.TB)
		wantErr bool
		reached bool
	}{
		{body: func(t testing.TB) {}, reached: true},
		{body: func(t testing.TB) { t.Fatal("boom") }, wantErr: true},
		{body: func(t testing.TB) { t.Skip("no server") }, wantErr: true},
		{body: func(t testing.TB) { t.Error("soft") }, wantErr: true, reached: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var log strings.Builder
			s := NewStandalone("peer", &log)
			var order []int
			var dir string
			reached := false
			err := s.Do(func(tb testing.TB) {
				dir = tb.TempDir()
				tb.Cleanup(func() { order = append(order, 1) })
				tb.Cleanup(func() { order = append(order, 2) })
				c.body(tb)
				reached = true
			})
			if (err != nil) != c.wantErr || (err != nil && !errors.Is(err, ErrStandalone)) {
				t.Fatalf("Do = %v, want error %t", err, c.wantErr)
			}
			if reached != c.reached {
				t.Errorf("end of body reached = %t, want %t", reached, c.reached)
			}
			if c.wantErr && !strings.Contains(log.String(), "peer: ") {
				t.Errorf("log lacks the reason: %q", log.String())
			}
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("temp dir before Close: %v", err)
			}
			s.Close()
			if len(order) != 2 || order[0] != 2 || order[1] != 1 {
				t.Errorf("cleanups ran in order %v, want [2 1]", order)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temp dir after Close: %v", err)
			}
		})
	}
}
