package sm

// ring is a FIFO of the stanzas written and not yet acknowledged. It grows
// by doubling up to what it has held at most and never shrinks while in
// use, so that the steady state of a link appends and drops without
// allocating.
//
// It works on the (at most two) contiguous runs of its buffer rather than
// slot by slot: a stanza is a dozen words with pointers, and a batch
// copied or cleared in one go is one bulk copy (and one bulk write
// barrier while the collector marks) instead of one per stanza, with no
// division per slot for the wrap.
type ring[T any] struct {
	buf  []T
	head int // index of the oldest
	n    int
}

func (r *ring[T]) len() int { return r.n }

// grow makes room for k more.
func (r *ring[T]) grow(k int) {
	if r.n+k <= len(r.buf) {
		return
	}
	size := max(8, 2*len(r.buf))
	for size < r.n+k {
		size *= 2
	}
	nb := make([]T, size)
	r.copyTo(nb)
	r.buf, r.head = nb, 0
}

// tail is the index of the slot after the newest.
func (r *ring[T]) tail() int {
	t := r.head + r.n
	if t >= len(r.buf) {
		t -= len(r.buf)
	}
	return t
}

func (r *ring[T]) push(v T) {
	r.grow(1)
	r.buf[r.tail()] = v
	r.n++
}

// pushAll appends vs, oldest first.
func (r *ring[T]) pushAll(vs []T) {
	if len(vs) == 0 {
		return
	}
	r.grow(len(vs))
	t := r.tail()
	k := copy(r.buf[t:], vs)
	copy(r.buf, vs[k:])
	r.n += len(vs)
}

// drop forgets the n oldest (n <= len), clearing their slots so that the
// stanzas' bytes can be collected.
func (r *ring[T]) drop(n int) {
	if n <= 0 {
		return
	}
	end := r.head + n
	if end <= len(r.buf) {
		clear(r.buf[r.head:end])
	} else {
		clear(r.buf[r.head:])
		clear(r.buf[:end-len(r.buf)])
	}
	r.n -= n
	r.head = end
	if r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
	if r.n == 0 {
		r.head = 0
	}
}

// dropTail forgets the n newest (n <= len).
func (r *ring[T]) dropTail(n int) {
	if n <= 0 {
		return
	}
	r.n -= n
	start := r.tail() // the first slot to forget
	if end := start + n; end <= len(r.buf) {
		clear(r.buf[start:end])
	} else {
		clear(r.buf[start:])
		clear(r.buf[:end-len(r.buf)])
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
	first := min(n, len(r.buf)-r.head)
	for _, v := range r.buf[r.head : r.head+first] {
		f(v)
	}
	for _, v := range r.buf[:n-first] {
		f(v)
	}
}

// runs calls f with the n oldest, oldest first, as the (at most two)
// slices of the buffer that hold them.
func (r *ring[T]) runs(n int, f func([]T)) {
	if n <= 0 {
		return
	}
	first := min(n, len(r.buf)-r.head)
	f(r.buf[r.head : r.head+first])
	if n > first {
		f(r.buf[:n-first])
	}
}
