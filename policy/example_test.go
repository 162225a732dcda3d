package policy_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/policy"
)

func ExampleTable() {
	c, err := config.Parse("s2s.toml", []byte(`
default_policy = "deny"
host_policy = [{host = "Bücher.Example.", policy = "allow"}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rules, err := policy.RulesFromConfig(c)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := policy.New(rules)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	fmt.Println(p.Decide(ctx, "xn--bcher-kva.example"))
	fmt.Println(p.Decide(ctx, "stranger.example"))

	// On reload: new rules for every link, atomically.
	if err := p.Replace(policy.Rules{Default: policy.Allow}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Decide(ctx, "stranger.example"))
	// Output:
	// allow "xn--bcher-kva.example" (host rule)
	// deny "stranger.example" (default rule)
	// allow "stranger.example" (default rule)
}

func ExampleFunc() {
	// A host server's own rule: federate with any subdomain of a partner.
	var p policy.Policy = policy.Func(func(ctx context.Context, host string) policy.Decision {
		ok := host == "partner.example" || strings.HasSuffix(host, ".partner.example")
		d := policy.Decision{Host: host, Action: policy.Deny, Rule: policy.HostRule}
		if ok {
			d.Action = policy.Allow
		}
		return d
	})
	fmt.Println(p.Decide(context.Background(), "chat.partner.example"))
	// Output:
	// allow "chat.partner.example" (host rule)
}
