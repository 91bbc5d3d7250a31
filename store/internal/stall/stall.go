// Package stall bounds how long a stream may go without progress. A
// remote end that stops sending mid-body (a stalled upstream, a client
// trickling its upload) would otherwise hold a fetch, and everyone
// waiting on it, forever; a deadline for the whole body would cut off
// large transfers that are merely slow.
package stall

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrStalled is returned by a Reader once no byte arrived for its timeout.
var ErrStalled = errors.New("no data received")

// Reader returns r, whose reads fail with ErrStalled once idle passes
// without a byte arriving; abort is called at that moment, to end the
// blocked read underneath (cancelling the request it belongs to).
func Reader(r io.Reader, idle time.Duration, abort func()) io.ReadCloser {
	s := &reader{r: r, idle: idle}
	s.timer = time.AfterFunc(idle, func() {
		s.mu.Lock()
		s.stalled = true
		s.mu.Unlock()
		abort()
	})
	return s
}

type reader struct {
	r     io.Reader
	idle  time.Duration
	timer *time.Timer

	mu      sync.Mutex
	stalled bool
}

func (s *reader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled {
		return n, fmt.Errorf("%w for %v", ErrStalled, s.idle)
	}
	if n > 0 {
		s.timer.Reset(s.idle)
	}
	return n, err
}

// Close stops the timer; it does not close r.
func (s *reader) Close() error {
	s.timer.Stop()
	return nil
}
