package s2s

import (
	"strconv"
	"testing"
)

func TestMessageBothWays(t *testing.T) {
	for i, mode := range []string{"false", "optional", "required", "required_trusted"} {
		t.Run(strconv.Itoa(i)+"-"+mode, func(t *testing.T) {
			a, b := pairNodes(t, []nodeOpt{withMode(mode)}, []nodeOpt{withMode(mode)})
			a.send(`<message from='alice@a.test/x' to='bob@b.test' id='m1' type='chat'><body>hi</body></message>`)
			got := b.nextDelivered()
			if got.From != "alice@a.test/x" || got.To != "bob@b.test" || got.ID != "m1" || got.Name != "message" {
				t.Fatalf("delivered %+v", got)
			}
			b.send(`<message from='bob@b.test' to='alice@a.test/x' id='m2'><body>hello</body></message>`)
			if got := a.nextDelivered(); got.ID != "m2" {
				t.Fatalf("delivered %+v", got)
			}
			links := a.m.Links()
			if len(links) != 2 {
				t.Fatalf("a links = %+v", links)
			}
			for _, l := range links {
				wantTLS := mode != "false"
				if (l.TLSVersion != 0) != wantTLS || l.Auth != AuthDialback {
					t.Errorf("link %+v: tls=%s auth=%s", l, l.TLS(), l.Auth)
				}
			}
		})
	}
}
