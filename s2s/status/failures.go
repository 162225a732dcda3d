package status

import (
	"errors"
	"sync"
	"time"

	"github.com/xmpp-s2s/federation/s2s"
)

// Failure is one failed link attempt, ended link or bounce, as the page
// lists it. Repeats of the same failure (same kind, pair and reason) in a
// row are folded into one entry with a count.
type Failure struct {
	Time      time.Time
	Kind      string // "link failed", "authentication refused", "link lost", "bounced"
	Direction s2s.Direction
	Local     string
	Remote    string
	Step      s2s.Step // the failed step, when the error names one
	Reason    string
	Count     int
}

// failures keeps the latest entries, newest last.
type failures struct {
	mu   sync.Mutex
	max  int
	list []Failure
}

func (f *failures) add(e Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.list); n > 0 {
		last := &f.list[n-1]
		if last.Kind == e.Kind && last.Direction == e.Direction && last.Local == e.Local && last.Remote == e.Remote && last.Reason == e.Reason {
			last.Count++
			last.Time = e.Time
			return
		}
	}
	e.Count = 1
	f.list = append(f.list, e)
	if len(f.list) > f.max {
		f.list = append(f.list[:0], f.list[len(f.list)-f.max:]...)
	}
}

// newest returns the entries, newest first.
func (f *failures) newest() []Failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Failure, len(f.list))
	for i, e := range f.list {
		out[len(f.list)-1-i] = e
	}
	return out
}

// failureOf turns an event into a Failure; ok is false for events that are
// not failures (a link that closed cleanly, went idle, or was closed by its
// peer or our shutdown).
func failureOf(e s2s.Event, now time.Time) (Failure, bool) {
	f := Failure{Time: now, Direction: e.Link.Direction, Local: e.Link.Local, Remote: e.Link.Remote}
	switch e.Kind {
	case s2s.LinkFailed:
		f.Kind = "link failed"
	case s2s.AuthFailed:
		f.Kind = "authentication refused"
	case s2s.LinkDown:
		if e.Err == nil || errors.Is(e.Err, s2s.ErrIdle) || errors.Is(e.Err, s2s.ErrPeerClosed) || errors.Is(e.Err, s2s.ErrClosed) {
			return Failure{}, false
		}
		f.Kind = "link lost"
	case s2s.Bounced:
		f.Kind = "bounced"
		f.Direction = s2s.Outgoing
		f.Local, f.Remote = domainOf(e.Bounce.Stanza.From), domainOf(e.Bounce.Stanza.To)
		f.Step = s2s.StepOf(e.Bounce.Err)
		f.Reason = string(e.Bounce.Condition) + ": " + e.Bounce.Text
		return f, true
	default:
		return Failure{}, false
	}
	f.Step = s2s.StepOf(e.Err)
	if e.Err != nil {
		f.Reason = e.Err.Error()
	}
	return f, true
}

// domainOf is the domain part of a JID.
func domainOf(j string) string {
	for i := 0; i < len(j); i++ {
		if j[i] == '@' {
			j = j[i+1:]
			break
		}
	}
	for i := 0; i < len(j); i++ {
		if j[i] == '/' {
			return j[:i]
		}
	}
	return j
}
