package policy

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/domain"
)

func TestDecide(t *testing.T) {
	denyByDefault := Rules{Default: Deny, Hosts: map[string]Action{
		"Bücher.Example.": Allow,
		"Friend.EXAMPLE":  Allow,
		"foe.example":     Deny,
	}}
	allowByDefault := Rules{Default: Allow, Hosts: map[string]Action{
		"xn--bcher-kva.example": Deny,
		"friend.example.":       Allow,
	}}
	for i, tc := range []struct {
		rules Rules
		host  string
		want  Decision
	}{
		// Default deny with allow entries; IDN, case and trailing dot.
		{denyByDefault, "bücher.example", Decision{Host: "xn--bcher-kva.example", Action: Allow, Rule: HostRule}},
		{denyByDefault, "xn--bcher-kva.example", Decision{Host: "xn--bcher-kva.example", Action: Allow, Rule: HostRule}},
		{denyByDefault, "XN--BCHER-KVA.EXAMPLE.", Decision{Host: "xn--bcher-kva.example", Action: Allow, Rule: HostRule}},
		{denyByDefault, "BÜCHER.example", Decision{Host: "xn--bcher-kva.example", Action: Allow, Rule: HostRule}},
		{denyByDefault, "friend.example", Decision{Host: "friend.example", Action: Allow, Rule: HostRule}},
		{denyByDefault, "FRIEND.example.", Decision{Host: "friend.example", Action: Allow, Rule: HostRule}},
		{denyByDefault, "foe.example", Decision{Host: "foe.example", Rule: HostRule}},
		{denyByDefault, "stranger.example", Decision{Host: "stranger.example", Rule: DefaultRule}},
		// Exact match only: a subdomain is another host.
		{denyByDefault, "sub.friend.example", Decision{Host: "sub.friend.example", Rule: DefaultRule}},
		// The reverse: default allow with deny entries.
		{allowByDefault, "Bücher.Example", Decision{Host: "xn--bcher-kva.example", Rule: HostRule}},
		{allowByDefault, "friend.example", Decision{Host: "friend.example", Action: Allow, Rule: HostRule}},
		{allowByDefault, "Stranger.Example.", Decision{Host: "stranger.example", Action: Allow, Rule: DefaultRule}},
		// No rules at all: the zero Rules deny.
		{Rules{}, "anyone.example", Decision{Host: "anyone.example", Rule: DefaultRule}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			tab, err := New(tc.rules)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := tab.Decide(context.Background(), tc.host); got != tc.want {
				t.Fatalf("Decide(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
}

// TestDecideInvalidHost: a name that is not a domain is denied even when the
// default allows, and the decision says why.
func TestDecideInvalidHost(t *testing.T) {
	tab, err := New(Rules{Default: Allow})
	if err != nil {
		t.Fatal(err)
	}
	for i, host := range []string{"", "exa mple.org", "192.0.2.1", "[::1]", "a..b", "under_score.example"} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			d := tab.Decide(context.Background(), host)
			if d.Allowed() || d.Rule != InvalidHost || d.Host != host {
				t.Fatalf("Decide(%q) = %v, want an invalid-host denial", host, d)
			}
			if !errors.Is(d.Err, ErrInvalidHost) || !errors.Is(d.Err, domain.ErrInvalid) {
				t.Fatalf("Decide(%q).Err = %v, want ErrInvalidHost and domain.ErrInvalid", host, d.Err)
			}
		})
	}
}

func TestZeroTable(t *testing.T) {
	var tab Table
	want := Decision{Host: "a.example", Rule: DefaultRule}
	if got := tab.Decide(context.Background(), "A.example"); got != want {
		t.Fatalf("zero Table Decide = %v, want %v", got, want)
	}
	if r := tab.Rules(); r.Default != Deny || len(r.Hosts) != 0 {
		t.Fatalf("zero Table Rules = %+v", r)
	}
}

func TestNewErrors(t *testing.T) {
	for i, tc := range []struct {
		rules Rules
		is    error
		err   string
	}{
		{Rules{Hosts: map[string]Action{"Bücher.example": Allow, "xn--bcher-kva.example.": Deny}}, ErrDuplicateHost,
			`policy: duplicate host "xn--bcher-kva.example": written as "Bücher.example" and "xn--bcher-kva.example."`},
		{Rules{Hosts: map[string]Action{"a.example": Allow, "A.EXAMPLE": Allow}}, ErrDuplicateHost,
			`policy: duplicate host "a.example": written as "A.EXAMPLE" and "a.example"`},
		{Rules{Hosts: map[string]Action{"exa mple.org": Allow}}, ErrInvalidHost,
			`policy: invalid host: invalid domain: "exa mple.org": idna: disallowed rune U+0020`},
		{Rules{Default: Action(7)}, ErrAction, `default: policy: unknown action Action(7)`},
		{Rules{Hosts: map[string]Action{"a.example": Action(2)}}, ErrAction, `host "a.example": policy: unknown action Action(2)`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			_, err := New(tc.rules)
			if err == nil || err.Error() != tc.err || !errors.Is(err, tc.is) {
				t.Fatalf("New error = %v, want %s wrapping %v", err, tc.err, tc.is)
			}
		})
	}
}

func TestReplaceKeepsOldRulesOnError(t *testing.T) {
	tab, err := New(Rules{Default: Allow, Hosts: map[string]Action{"foe.example": Deny}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Replace(Rules{Hosts: map[string]Action{"a b": Allow}}); !errors.Is(err, ErrInvalidHost) {
		t.Fatalf("Replace error = %v, want ErrInvalidHost", err)
	}
	if d := tab.Decide(context.Background(), "stranger.example"); !d.Allowed() {
		t.Fatalf("after a failed Replace, Decide = %v, want the old default allow", d)
	}
	if err := tab.Replace(Rules{Default: Deny, Hosts: map[string]Action{"Friend.Example": Allow}}); err != nil {
		t.Fatal(err)
	}
	r := tab.Rules()
	if r.Default != Deny || len(r.Hosts) != 1 || r.Hosts["friend.example"] != Allow {
		t.Fatalf("Rules after Replace = %+v", r)
	}
	r.Hosts["friend.example"] = Deny // a copy: the table must not change
	if d := tab.Decide(context.Background(), "friend.example"); !d.Allowed() {
		t.Fatalf("modifying Rules() changed the table: %v", d)
	}
}

// TestReplaceWhileDeciding swaps between two rule sets while readers decide;
// run with -race. Every decision must come whole from one of the two sets:
// under A the host is allowed by its entry, under B denied by default.
func TestReplaceWhileDeciding(t *testing.T) {
	a := Rules{Default: Deny, Hosts: map[string]Action{"friend.example": Allow}}
	b := Rules{Default: Deny}
	tab, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	wantA := Decision{Host: "friend.example", Action: Allow, Rule: HostRule}
	wantB := Decision{Host: "friend.example", Rule: DefaultRule}

	stop := make(chan struct{})
	bad := make(chan Decision, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d := tab.Decide(context.Background(), "Friend.Example."); d != wantA && d != wantB {
					select {
					case bad <- d:
					default:
					}
					return
				}
			}
		}()
	}
	for i := range 2000 {
		r := a
		if i%2 == 0 {
			r = b
		}
		if err := tab.Replace(r); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(bad)
	for d := range bad {
		t.Fatalf("a reader saw %v, which neither rule set gives", d)
	}
	if got := tab.Decide(context.Background(), "friend.example"); got != wantA {
		t.Fatalf("after the last Replace, Decide = %v, want %v", got, wantA)
	}
}

// fromConfig is the two steps a host takes: rules from the section, then
// a Table holding them.
func fromConfig(c config.S2S) (*Table, error) {
	r, err := RulesFromConfig(c)
	if err != nil {
		return nil, err
	}
	return New(r)
}

func TestRulesFromConfig(t *testing.T) {
	c, err := config.Parse("s2s.toml", []byte(`
default_policy = "deny"
host_policy = [
  {host = "Good.Example.", policy = "allow"},
  {host = "bad.example", policy = "deny"},
]
`))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := fromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		host string
		want Decision
	}{
		{"good.example", Decision{Host: "good.example", Action: Allow, Rule: HostRule}},
		{"bad.example", Decision{Host: "bad.example", Rule: HostRule}},
		{"other.example", Decision{Host: "other.example", Rule: DefaultRule}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := tab.Decide(context.Background(), tc.host); got != tc.want {
				t.Fatalf("Decide(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}

	// The defaults of an empty section allow everyone.
	tab, err = fromConfig(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	if d := tab.Decide(context.Background(), "anyone.example"); !d.Allowed() || d.Rule != DefaultRule {
		t.Fatalf("default config: Decide = %v, want allow by default", d)
	}
}

func TestRulesFromConfigErrors(t *testing.T) {
	for i, tc := range []struct {
		c   config.S2S
		is  error
		err string
	}{
		{config.S2S{DefaultPolicy: "maybe"}, ErrAction, `default_policy: policy: unknown action "maybe" (want "allow" or "deny")`},
		{config.S2S{DefaultPolicy: "allow", HostPolicy: []config.HostPolicy{{Host: "a.example", Policy: "Allow"}}}, ErrAction,
			`host_policy[0]: policy: unknown action "Allow" (want "allow" or "deny")`},
		{config.S2S{DefaultPolicy: "allow", HostPolicy: []config.HostPolicy{{Host: "a.example", Policy: "allow"}, {Host: "a.example", Policy: "deny"}}}, ErrDuplicateHost,
			`host_policy[1]: policy: duplicate host "a.example"`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			_, err := RulesFromConfig(tc.c)
			if err == nil || err.Error() != tc.err || !errors.Is(err, tc.is) {
				t.Fatalf("RulesFromConfig error = %v, want %s wrapping %v", err, tc.err, tc.is)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for i, tc := range []struct {
		got, want string
	}{
		{Allow.String(), "allow"},
		{Deny.String(), "deny"},
		{Action(9).String(), "Action(9)"},
		{DefaultRule.String(), "default rule"},
		{HostRule.String(), "host rule"},
		{InvalidHost.String(), "invalid host"},
		{Failed.String(), "failed"},
		{Rule(9).String(), "Rule(9)"},
		{Decision{Host: "a.example", Action: Allow, Rule: HostRule}.String(), `allow "a.example" (host rule)`},
		{Decision{Host: "b.example", Rule: DefaultRule}.String(), `deny "b.example" (default rule)`},
		{Decision{Host: "c.example", Rule: Failed, Err: errors.New("db down")}.String(), `deny "c.example" (failed: db down)`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestParseAction(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want Action
		ok   bool
	}{
		{"allow", Allow, true},
		{"deny", Deny, true},
		{"Allow", Deny, false},
		{"", Deny, false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := ParseAction(tc.in)
			if got != tc.want || (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrAction)) {
				t.Fatalf("ParseAction(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestFunc(t *testing.T) {
	lookupFailed := errors.New("partner database unavailable")
	var p Policy = Func(func(ctx context.Context, host string) Decision {
		if err := ctx.Err(); err != nil {
			return Decision{Host: host, Rule: Failed, Err: err}
		}
		if host == "down.example" {
			return Decision{Host: host, Rule: Failed, Err: lookupFailed}
		}
		return Decision{Host: host, Action: Allow, Rule: HostRule}
	})
	if d := p.Decide(context.Background(), "up.example"); !d.Allowed() {
		t.Fatalf("Decide = %v, want allow", d)
	}
	if d := p.Decide(context.Background(), "down.example"); d.Allowed() || !errors.Is(d.Err, lookupFailed) {
		t.Fatalf("Decide = %v, want a failed denial", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := p.Decide(ctx, "up.example"); d.Allowed() || !errors.Is(d.Err, context.Canceled) {
		t.Fatalf("Decide with a cancelled context = %v, want a failed denial", d)
	}
}
