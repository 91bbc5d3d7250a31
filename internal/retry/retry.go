// Package retry runs an operation again while it fails in a way waiting
// can cure (a server restarting, a connection refused), with exponential
// backoff, for at most a time budget counted from the first failure: a
// daemon rides out a restart of its database or object store instead of
// failing every request made meanwhile, and still fails a request once
// the outage outlasts the budget.
package retry

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Policy says what is retried and for how long.
type Policy struct {
	// Budget is how long after the first failure tries go on.
	Budget time.Duration
	// First is the first wait; each next one doubles, up to Max.
	First, Max time.Duration
	// Retryable says whether an error is worth another try.
	Retryable func(error) bool
}

// Do runs op until it succeeds, returns an error Retryable refuses, the
// context ends or the budget is spent; what names op in the log.
func (p Policy) Do(ctx context.Context, what string, op func(context.Context) error) error {
	var deadline time.Time
	wait := p.First
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || !p.Retryable(err) || ctx.Err() != nil {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(p.Budget)
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("gave up after %d tries over %s: %w", attempt, p.Budget, err)
		}
		slog.Debug("retrying", "op", what, "attempt", attempt, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		wait = min(2*wait, p.Max)
	}
}
