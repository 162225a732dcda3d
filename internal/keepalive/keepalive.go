// Package keepalive decides when a stream's peer must be probed and when
// it is dead, from the signs of life the stream sees: the rule behind
// s2s.Config.KeepAlive, without the network or a clock.
//
// A stream silent for one interval is probed (the caller sends an XEP-0198
// <r/> or an XEP-0199 ping); if nothing is heard for another interval
// after the probe, the peer is dead. So a link that went half-open (the
// peer's host vanished, a NAT forgot it: writes succeed, nothing arrives)
// is found at most two intervals after the last thing heard from it.
// What counts as a sign of life is the caller's: any byte read (whitespace
// keepalives included) on an incoming stream, an answer on an outgoing
// one.
package keepalive

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Action is what Monitor.Check asks the caller to do.
type Action uint8

// The actions of Check.
const (
	Wait  Action = iota // nothing until the time Check returned
	Probe               // send a probe now, then call Probed
	Dead                // the peer is gone: end the stream
)

// Monitor is the keepalive state of one stream. Heard may be called from
// any goroutine (the stream's reader); Check and Probed from one at a time
// (the stream's keepalive timer). The zero Monitor is not usable: use New.
type Monitor struct {
	every time.Duration
	last  atomic.Int64 // UnixNano of the last sign of life
	probe atomic.Int64 // UnixNano of the outstanding probe, 0 when none
}

// New returns the Monitor of a stream that was heard from at now (it just
// authenticated), probing after every of silence.
func New(every time.Duration, now time.Time) *Monitor {
	m := &Monitor{every: every}
	m.last.Store(now.UnixNano())
	return m
}

// Every is the interval.
func (m *Monitor) Every() time.Duration { return m.every }

// Heard records a sign of life at now. It is an atomic store: cheap
// enough for every read.
func (m *Monitor) Heard(now time.Time) {
	m.last.Store(now.UnixNano())
}

// Last is when life was last heard.
func (m *Monitor) Last() time.Time { return time.Unix(0, m.last.Load()) }

// Probed records a probe sent at now.
func (m *Monitor) Probed(now time.Time) {
	m.probe.Store(now.UnixNano())
}

// Check says what to do at now and when to check again (for Wait and
// Probe: the caller arms its timer for next).
func (m *Monitor) Check(now time.Time) (a Action, next time.Time) {
	n := now.UnixNano()
	last := m.last.Load()
	if p := m.probe.Load(); p != 0 {
		if last >= p {
			// Answered: life came after the probe.
			m.probe.Store(0)
		} else if n-p >= int64(m.every) {
			return Dead, time.Time{}
		} else {
			return Wait, time.Unix(0, p).Add(m.every)
		}
	}
	if n-last >= int64(m.every) {
		return Probe, now.Add(m.every)
	}
	return Wait, time.Unix(0, last).Add(m.every)
}

// Conn is a net.Conn that reports every read that returns bytes to a
// Monitor, so that anything the peer sends, whitespace between stanzas
// included, counts as life. Its clock is time.Now unless Now is set.
type Conn struct {
	net.Conn
	M   *Monitor
	Now func() time.Time
}

// SyscallConn is the connection's socket, when it has one: Conn keeps no
// bytes of its own, so a wait for the socket to become readable is a wait
// for Read to have something (a parked reader's, in s2s).
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoSocket
	}
	return sc.SyscallConn()
}

// errNoSocket is SyscallConn's error over a connection without a socket.
var errNoSocket = errors.New("keepalive: no socket under the connection")

// Read reads from the connection and records life when bytes came.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.Now != nil {
			c.M.Heard(c.Now())
		} else {
			c.M.Heard(time.Now())
		}
	}
	return n, err
}
