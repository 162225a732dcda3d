package main

import (
	"sync"

	"mellium.im/sasl"
)

// authState records who authenticated on one client connection, for the
// resource binding that follows. SASL runs on the connection's goroutine,
// but the lock keeps the race detector's view simple.
type authState struct {
	mu   sync.Mutex
	user string // bare JID, once authenticated
}

func (a *authState) set(user string) {
	a.mu.Lock()
	a.user = user
	a.mu.Unlock()
}

func (a *authState) get() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.user
}

// mechanisms returns the SASL mechanisms offered on a connection to
// domain, strongest first.
//
// mellium's xmpp.SASLServer gives the mechanisms' server side only a
// permissions callback and never the salted credentials SCRAM needs
// (sasl.SaltedCredentials), so its SCRAM mechanisms cannot run on a server
// as they are. Each SCRAM mechanism offered here is therefore a thin
// wrapper: on the first client message it starts a negotiator of its own,
// which has the credentials, and steps it with each message the session
// hands over. PLAIN uses mellium's permissions callback (see plainOK).
func mechanisms(acc accounts, domain string, who *authState) []sasl.Mechanism {
	return []sasl.Mechanism{
		scramServer(sasl.ScramSha256, acc, domain, who),
		scramServer(sasl.ScramSha1, acc, domain, who),
		sasl.Plain,
	}
}

func scramServer(inner sasl.Mechanism, acc accounts, domain string, who *authState) sasl.Mechanism {
	return sasl.Mechanism{
		Name:  inner.Name,
		Start: inner.Start, // the client side; a server never calls it
		Next: func(m *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
			st, _ := data.(*scramState)
			if st == nil {
				st = &scramState{}
				opts := []sasl.Option{sasl.SaltedCredentials(func(username, identity []byte, mech string) ([]byte, []byte, int64, error) {
					user, ok := userJID(username, domain)
					a, known := acc[user]
					if !ok || !known || (len(identity) > 0 && string(identity) != user) {
						return nil, nil, 0, sasl.ErrAuthn
					}
					st.user = user
					return a.salt, a.salted[mech], scramIterations, nil
				})}
				if cs := m.TLSState(); cs != nil {
					opts = append(opts, sasl.TLSState(*cs))
				}
				st.n = sasl.NewServer(inner, nil, opts...)
			}
			more, resp, err := st.n.Step(challenge)
			if err != nil {
				// mellium answers only sasl.ErrAuthn with <failure/>
				// (not-authorized) and drops the connection on anything
				// else; a wrong proof is a failed authentication.
				return false, nil, nil, sasl.ErrAuthn
			}
			if !more {
				who.set(st.user)
			}
			return more, resp, st, nil
		},
	}
}

// scramState carries a SCRAM exchange between the session's steps.
type scramState struct {
	n    *sasl.Negotiator
	user string
}

// plainOK is the permissions callback of the SASL feature: it checks the
// credentials PLAIN received. An authorization identity other than the
// user's own is refused.
func plainOK(acc accounts, domain string, who *authState) func(*sasl.Negotiator) bool {
	return func(n *sasl.Negotiator) bool {
		username, password, identity := n.Credentials()
		user, ok := userJID(username, domain)
		if !ok || (len(identity) > 0 && string(identity) != user) {
			return false
		}
		if !acc.check(user, password) {
			return false
		}
		who.set(user)
		return true
	}
}
