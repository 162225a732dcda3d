package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xmpp-s2s/federation/s2s"
)

// Status is the outcome of one check.
type Status uint8

// The outcomes, from good to bad. A Warning is something a person should
// fix that does not stop federation by itself (a certificate expiring soon,
// one of two targets down); a Failure stops it.
const (
	OK Status = iota
	Warning
	Failure
)

// String returns "ok", "warning" or "failure".
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	case Failure:
		return "failure"
	}
	return "unknown"
}

// MarshalText returns the String form, for JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Check is one thing the diagnosis looked at.
type Check struct {
	// Step is the stage of a link the check belongs to, named as bounce
	// reasons and the metrics name it.
	Step s2s.Step `json:"step"`
	// Name says what was checked: "SRV _xmpp-server._tcp.example.net",
	// "connect 192.0.2.1:5269", "certificate name".
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail is what was found.
	Detail string `json:"detail"`
	// Advice is what to do about a warning or failure, as a sentence.
	Advice string `json:"advice,omitempty"`
	// Took is the time the check took, where that means something (DNS
	// queries, connections, handshakes).
	Took time.Duration `json:"-"`
}

// MarshalJSON adds took_ms to the fields.
func (c Check) MarshalJSON() ([]byte, error) {
	type plain Check
	return json.Marshal(struct {
		plain
		TookMS float64 `json:"took_ms,omitempty"`
	}{plain(c), float64(c.Took.Microseconds()) / 1000})
}

// Report is the outcome of a diagnosis: every check, in the order a link
// makes them.
type Report struct {
	Local  string  `json:"local"`
	Remote string  `json:"remote"`
	Checks []Check `json:"checks"`
}

// CanFederate reports whether no check failed.
func (r *Report) CanFederate() bool {
	_, failed := r.FirstFailure()
	return !failed
}

// FirstFailure returns the first failed check: the first thing to fix.
func (r *Report) FirstFailure() (Check, bool) {
	for _, c := range r.Checks {
		if c.Status == Failure {
			return c, true
		}
	}
	return Check{}, false
}

// Summary is one sentence: whether the pair can federate and, if not, the
// step that failed first and why, in the words of a bounce reason.
func (r *Report) Summary() string {
	if c, failed := r.FirstFailure(); failed {
		return fmt.Sprintf("%s cannot federate with %s: %s failed: %s: %s", r.Local, r.Remote, c.Step.Title(), c.Name, c.Detail)
	}
	warnings := 0
	for _, c := range r.Checks {
		if c.Status == Warning {
			warnings++
		}
	}
	if warnings > 0 {
		return fmt.Sprintf("%s can federate with %s (%d warning%s)", r.Local, r.Remote, warnings, plural(warnings))
	}
	return fmt.Sprintf("%s can federate with %s", r.Local, r.Remote)
}

// MarshalJSON adds can_federate and summary to the fields.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		*plain
		CanFederate bool   `json:"can_federate"`
		Summary     string `json:"summary"`
	}{(*plain)(r), r.CanFederate(), r.Summary()})
}

// WriteText writes the report for a terminal: one line per check (status,
// step, what, what was found), the advice indented under it, and the
// summary last.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "diagnosis of %s -> %s\n\n", r.Local, r.Remote)
	for _, c := range r.Checks {
		mark := map[Status]string{OK: "ok", Warning: "WARN", Failure: "FAIL"}[c.Status]
		took := ""
		if c.Took > 0 {
			took = " (" + formatTook(c.Took) + ")"
		}
		fmt.Fprintf(&b, "%-4s  %-18s  %s: %s%s\n", mark, c.Step.Title(), c.Name, c.Detail, took)
		if c.Advice != "" {
			fmt.Fprintf(&b, "%-4s  %-18s  -> %s\n", "", "", c.Advice)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.Summary())
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

func formatTook(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return d.Round(100 * time.Millisecond).String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
