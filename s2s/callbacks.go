package s2s

import "sync"

// bouncer hands bounces to the host's Bounce callback on a goroutine of its
// own, one at a time, in the order they were made. Bounces come from Send,
// Reload and Shutdown as well as from link goroutines; calling the host back
// on its own goroutine let a host whose Bounce waits for something that
// goroutine does next (a channel it reads after Reload returns, a lock it
// holds around Shutdown) deadlock with no error. The queue is not bounded:
// every stanza in it was already held by the Manager, and blocking the
// producer is what must not happen.
//
// Like the outgoing writer, the goroutine runs only while there is work.
type bouncer struct {
	m *Manager

	mu      sync.Mutex
	queue   []Bounce
	running bool
	// ended is set once the Manager's goroutines are gone after Shutdown:
	// done closes when the queue is next empty.
	ended bool
	done  chan struct{}
	shut  bool // done is closed
}

func newBouncer(m *Manager) *bouncer {
	return &bouncer{m: m, done: make(chan struct{})}
}

// add queues a bounce; it never blocks on the host.
func (d *bouncer) add(b Bounce) {
	d.mu.Lock()
	d.queue = append(d.queue, b)
	start := !d.running
	d.running = true
	d.mu.Unlock()
	if start {
		go d.run()
	}
}

func (d *bouncer) run() {
	var batch []Bounce
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			// Parked, it keeps no array: the two it swaps are as long as
			// the longest backlog since it started (20,000 bounces after
			// a burst of unknown domains are megabytes).
			d.queue = nil
			d.running = false
			d.closeDoneLocked()
			d.mu.Unlock()
			return
		}
		batch, d.queue = d.queue, batch[:0]
		d.mu.Unlock()
		for i, b := range batch {
			d.m.observe(Event{Kind: Bounced, Bounce: b, Stanza: b.Stanza})
			d.m.cfg.Bounce(b)
			batch[i] = Bounce{} // the stanza's bytes are the host's again
		}
	}
}

// end marks the Manager's own goroutines finished: nothing queues a bounce
// any more but a late Send, and done closes once the queue is delivered.
func (d *bouncer) end() {
	d.mu.Lock()
	d.ended = true
	if !d.running {
		d.closeDoneLocked()
	}
	d.mu.Unlock()
}

func (d *bouncer) closeDoneLocked() {
	if d.ended && !d.shut {
		d.shut = true
		close(d.done)
	}
}
