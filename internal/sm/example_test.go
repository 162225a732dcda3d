package sm_test

import (
	"fmt"
	"time"

	"github.com/xmpp-s2s/federation/internal/sm"
)

// A link keeps what it writes until the peer acknowledges it, and gives
// back the rest, in order, when its stream dies.
func Example() {
	now := time.Now()
	s := sm.NewSender[string](sm.Policy{RequestEvery: 2})
	for _, st := range []string{"one", "two", "three"} {
		s.Wrote(st, now)
		if s.NeedRequest(now) {
			fmt.Printf("after %q: %s\n", st, sm.Request)
			s.Requested(now)
		}
	}
	// The peer answers <r/>: it handled two stanzas.
	el, _ := sm.Parse([]byte(`<a xmlns='urn:xmpp:sm:3' h='2'/>`))
	s.Ack(el.H, now, func(st string) { fmt.Printf("acknowledged %q\n", st) })
	// The stream dies: what is left goes back to the link's queue.
	fmt.Println("to send again:", s.Take(nil))
	// Output:
	// after "two": <r xmlns='urn:xmpp:sm:3'/>
	// acknowledged "one"
	// acknowledged "two"
	// to send again: [three]
}
