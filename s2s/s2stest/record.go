package s2stest

import (
	"context"
	"sync"
)

// record is an append-only log of what the stub saw, with a cursor for the
// callers that consume it in order. Waiting is on a channel that is closed and
// replaced at each append, so a waiter wakes exactly when there is news.
type record[T any] struct {
	mu      sync.Mutex
	items   []T
	read    int           // how many items next has returned
	changed chan struct{} // closed at the next append
}

func (r *record[T]) init() { r.changed = make(chan struct{}) }

func (r *record[T]) add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// all returns a copy of the log.
func (r *record[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// next returns the first item next has not returned, waiting for it until ctx
// ends. Concurrent callers each get a different item.
func (r *record[T]) next(ctx context.Context) (T, error) {
	for {
		r.mu.Lock()
		if r.read < len(r.items) {
			v := r.items[r.read]
			r.read++
			r.mu.Unlock()
			return v, nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}
