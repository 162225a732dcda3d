package diagnose

import (
	"context"
	"fmt"

	"github.com/xmpp-s2s/federation/policy"
	"github.com/xmpp-s2s/federation/s2s"
)

// policy checks the local allow/deny rules for the remote domain, the first
// thing Send does.
func (p *probe) policy(ctx context.Context) {
	c := Check{Step: s2s.StepPolicy, Name: "default_policy and host_policy"}
	rules, err := policy.RulesFromConfig(p.cfg.S2S)
	if err == nil {
		var t *policy.Table
		if t, err = policy.New(rules); err == nil {
			d := t.Decide(ctx, p.remote)
			c.Detail = d.String()
			if !d.Allowed() {
				c.Status = Failure
				c.Advice = fmt.Sprintf("Our own policy refuses %s: add {host = %q, policy = \"allow\"} to host_policy if it should federate.", p.remote, p.remote)
			}
			p.rep.add(c)
			return
		}
	}
	c.Status, c.Detail = Failure, err.Error()
	c.Advice = "Fix default_policy and host_policy in the [s2s] section."
	p.rep.add(c)
}
