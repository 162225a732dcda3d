package keepalive

import (
	"net"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// TestMonitor walks the rule: probe after an interval of silence, dead
// after another without life; anything heard after the probe answers it.
func TestMonitor(t *testing.T) {
	type step struct {
		heard  int // heard at this second (-1: nothing)
		check  int // Check at this second
		want   Action
		next   int // expected next check, for Wait and Probe
		probed bool
	}
	for i, steps := range [][]step{
		// Half-open: silence from 0; probed at 10, dead at 20 = 2 intervals.
		{{-1, 5, Wait, 10, false}, {-1, 10, Probe, 20, true}, {-1, 15, Wait, 20, false}, {-1, 20, Dead, 0, false}},
		// The probe is answered: the interval counts from the answer.
		{{-1, 10, Probe, 20, true}, {12, 14, Wait, 22, false}, {-1, 22, Probe, 32, true}},
		// Steady life: never probed.
		{{4, 10, Wait, 14, false}, {13, 14, Wait, 23, false}, {22, 23, Wait, 32, false}},
		// A late check still probes once, then waits a whole interval.
		{{-1, 35, Probe, 45, true}, {-1, 44, Wait, 45, false}, {-1, 45, Dead, 0, false}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			m := New(10*time.Second, t0)
			for j, s := range steps {
				if s.heard >= 0 {
					m.Heard(at(s.heard))
				}
				a, next := m.Check(at(s.check))
				if a != s.want || (a != Dead && !next.Equal(at(s.next))) {
					t.Fatalf("step %d: Check(%d) = %v, %v; want %v, %d", j, s.check, a, next.Sub(t0), s.want, s.next)
				}
				if s.probed {
					m.Probed(at(s.check))
				}
			}
		})
	}
}

// TestConn: bytes read through a Conn, whitespace included, are life.
func TestConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	m := New(10*time.Second, t0)
	now := at(8)
	c := &Conn{Conn: a, M: m, Now: func() time.Time { return now }}
	go b.Write([]byte(" "))
	if _, err := c.Read(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if act, next := m.Check(at(12)); act != Wait || !next.Equal(at(18)) {
		t.Fatalf("after a space at 8s: %v until %v", act, next.Sub(t0))
	}
}
