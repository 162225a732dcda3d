package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/domain"
)

// ErrDuplicateHost is wrapped by the error New and Replace return when two
// hosts of the rules normalise to the same domain.
var ErrDuplicateHost = errors.New("policy: duplicate host")

// Rules is a complete rule set: a default and per-host entries that beat it.
// Host keys may be written in any case, with or without a trailing dot, as
// U-labels or A-labels; New and Replace normalise them. The zero value denies
// every host.
type Rules struct {
	Default Action
	Hosts   map[string]Action
}

// Table is the configuration-backed Policy: a rule set that can be replaced
// as a whole while links run. It is safe for concurrent use; a Decide that
// runs during a Replace sees either the old rules or the new ones, never a
// mix. The zero Table denies every host until Replace gives it rules.
type Table struct {
	rules atomic.Pointer[table]
}

// table is one normalised, immutable rule set.
type table struct {
	def   Action
	hosts map[string]Action
}

var _ Policy = (*Table)(nil)

// New returns a Table holding r. It fails, wrapping ErrInvalidHost,
// ErrDuplicateHost or ErrAction, when a host cannot be normalised, two hosts
// normalise to the same one, or an action is neither Allow nor Deny.
func New(r Rules) (*Table, error) {
	t := new(Table)
	if err := t.Replace(r); err != nil {
		return nil, err
	}
	return t, nil
}

// RulesFromConfig turns the default_policy and host_policy of a parsed [s2s]
// section into Rules, for New and, on reload, Replace (so that whoever
// holds the Table sees the new rules).
func RulesFromConfig(c config.S2S) (Rules, error) {
	def, err := ParseAction(c.DefaultPolicy)
	if err != nil {
		return Rules{}, fmt.Errorf("default_policy: %w", err)
	}
	r := Rules{Default: def, Hosts: make(map[string]Action, len(c.HostPolicy))}
	for i, h := range c.HostPolicy {
		a, err := ParseAction(h.Policy)
		if err != nil {
			return Rules{}, fmt.Errorf("host_policy[%d]: %w", i, err)
		}
		// config has already refused duplicates, but an S2S can be built
		// by hand, and a map would silently keep only the last entry.
		if _, dup := r.Hosts[h.Host]; dup {
			return Rules{}, fmt.Errorf("host_policy[%d]: %w %q", i, ErrDuplicateHost, h.Host)
		}
		r.Hosts[h.Host] = a
	}
	return r, nil
}

// Replace swaps in a new rule set atomically. On error the Table keeps its
// old rules. Links already up are not touched: the caller re-checks them
// with Decide.
func (t *Table) Replace(r Rules) error {
	if !r.Default.valid() {
		return fmt.Errorf("default: %w %v", ErrAction, r.Default)
	}
	next := &table{def: r.Default, hosts: make(map[string]Action, len(r.Hosts))}
	from := make(map[string]string, len(r.Hosts))
	// Sorted, so that which of two clashing spellings is named first does
	// not depend on map order.
	for _, name := range slices.Sorted(maps.Keys(r.Hosts)) {
		a := r.Hosts[name]
		if !a.valid() {
			return fmt.Errorf("host %q: %w %v", name, ErrAction, a)
		}
		h, err := domain.Normalize(name)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidHost, err)
		}
		if first, dup := from[h]; dup {
			return fmt.Errorf("%w %q: written as %q and %q", ErrDuplicateHost, h, first, name)
		}
		from[h] = name
		next.hosts[h] = a
	}
	t.rules.Store(next)
	return nil
}

// Rules returns a copy of the rule set in force, with hosts normalised.
func (t *Table) Rules() Rules {
	cur := t.rules.Load()
	if cur == nil {
		return Rules{}
	}
	return Rules{Default: cur.def, Hosts: maps.Clone(cur.hosts)}
}

// Decide answers for host: its entry if it has one, the default otherwise,
// and deny with Rule InvalidHost when host is not a valid domain. It never
// blocks; ctx is there to satisfy Policy.
func (t *Table) Decide(_ context.Context, host string) Decision {
	h, err := domain.Normalize(host)
	if err != nil {
		return Decision{Host: host, Rule: InvalidHost, Err: fmt.Errorf("%w: %w", ErrInvalidHost, err)}
	}
	cur := t.rules.Load()
	if cur == nil {
		return Decision{Host: h, Rule: DefaultRule}
	}
	if a, ok := cur.hosts[h]; ok {
		return Decision{Host: h, Action: a, Rule: HostRule}
	}
	return Decision{Host: h, Action: cur.def, Rule: DefaultRule}
}
