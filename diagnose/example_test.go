package diagnose_test

import (
	"context"
	"fmt"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/diagnose"
	"github.com/xmpp-s2s/federation/internal/dnstest"
)

// A domain that does not exist fails at the DNS step, and the report says
// so in the words a bounce would use.
func ExampleRun() {
	dns, err := dnstest.NewServer("127.0.0.1:0") // answers NXDOMAIN for every name
	if err != nil {
		panic(err)
	}
	defer dns.Close()

	cfg := diagnose.Config{S2S: config.Default(), Nameservers: []string{dns.Addr()}, Timeout: 5 * time.Second}
	rep, err := diagnose.Run(context.Background(), cfg, "example.org", "nowhere.example")
	if err != nil {
		panic(err)
	}
	first, _ := rep.FirstFailure()
	fmt.Println(rep.CanFederate())
	fmt.Println(first.Step.Title(), "-", first.Name)
	fmt.Println(first.Advice)
	// Output:
	// false
	// DNS - addresses of nowhere.example
	// nowhere.example does not exist in DNS: check the domain's spelling and that its zone is published.
}
