package demo

import (
	"sync"

	"github.com/xmpp-s2s/federation/dialback"
)

// KeyLog records which node made each dialback key and which node checked
// it, as the nodes' Config.Keys see them: the proof that a key made on one
// node was verified on another.
type KeyLog struct {
	mu     sync.Mutex
	made   map[string]string // key -> node that made it
	checks []Check
}

// Check is one key checked by a node answering <db:verify>.
type Check struct {
	MadeBy    string // "" when no node of the cluster made it
	CheckedBy string
	Valid     bool
	Receiving string // the remote domain the key was presented to
}

// Checks returns every check so far, in order.
func (l *KeyLog) Checks() []Check {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Check(nil), l.checks...)
}

// recordingKeys is a node's dialback.KeySource: its Keyring, with every key
// it makes and checks written to the log.
type recordingKeys struct {
	node string
	ring *dialback.Keyring
	log  *KeyLog
}

func (k recordingKeys) Key(receiving, originating, streamID string) (string, error) {
	key, err := k.ring.Key(receiving, originating, streamID)
	if err == nil {
		k.log.mu.Lock()
		k.log.made[key] = k.node
		k.log.mu.Unlock()
	}
	return key, err
}

func (k recordingKeys) CheckKey(key, receiving, originating, streamID string) (bool, error) {
	ok, err := k.ring.CheckKey(key, receiving, originating, streamID)
	if err == nil {
		k.log.mu.Lock()
		k.log.checks = append(k.log.checks, Check{MadeBy: k.log.made[key], CheckedBy: k.node, Valid: ok, Receiving: receiving})
		k.log.mu.Unlock()
	}
	return ok, err
}
