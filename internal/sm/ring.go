package sm

// ring is a FIFO of the stanzas written and not yet acknowledged. It grows
// by doubling up to what it has held at most and never shrinks while in
// use, so that the steady state of a link appends and drops without
// allocating.
type ring[T any] struct {
	buf  []T
	head int // index of the oldest
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(8, 2*len(r.buf)))
		r.copyTo(nb)
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// drop forgets the n oldest (n <= len), clearing their slots so that the
// stanzas' bytes can be collected.
func (r *ring[T]) drop(n int) {
	var zero T
	for range n {
		r.buf[r.head] = zero
		r.head = (r.head + 1) % len(r.buf)
	}
	r.n -= n
	if r.n == 0 {
		r.head = 0
	}
}

// dropTail forgets the n newest (n <= len).
func (r *ring[T]) dropTail(n int) {
	var zero T
	for range n {
		r.n--
		r.buf[(r.head+r.n)%len(r.buf)] = zero
	}
	if r.n == 0 {
		r.head = 0
	}
}

// release gives the buffer up when the ring is empty, so that an idle
// link does not keep the room its busiest moment needed; the next push
// allocates a small one again.
func (r *ring[T]) release() {
	if r.n == 0 {
		r.buf, r.head = nil, 0
	}
}

// copyTo copies the elements, oldest first, to dst (len(dst) >= r.n).
func (r *ring[T]) copyTo(dst []T) {
	if r.n == 0 {
		return
	}
	k := copy(dst, r.buf[r.head:min(len(r.buf), r.head+r.n)])
	copy(dst[k:], r.buf[:r.n-k])
}

// each calls f for the n oldest, oldest first.
func (r *ring[T]) each(n int, f func(T)) {
	for i := range n {
		f(r.buf[(r.head+i)%len(r.buf)])
	}
}
