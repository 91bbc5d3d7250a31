// Package grpcstatus is the one translation between our errors and gRPC
// status codes, used by every server and client in the module, so that a
// client's errors.Is sees the same not-found sentinel and context errors
// the server saw: a caller that stops on castore.ErrNotFound or retries on
// context.DeadlineExceeded must not need to know the store is remote.
package grpcstatus

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Mapping names the errors of one service that a client must be able to
// tell apart; everything else is the server's problem (Internal).
type Mapping struct {
	// NotFound are sentinels (matched with errors.Is) answered with
	// codes.NotFound.
	NotFound []error
	// Invalid reports errors answered with codes.InvalidArgument: the
	// request, not the server, is at fault. nil: none are.
	Invalid func(error) bool
}

// ToStatus turns an error of the service into the status error a handler
// returns, keeping its message. nil stays nil.
//
// Not-found and invalid come before the context errors so that a lookup
// that failed for a definite reason says so even if the request was
// cancelled meanwhile.
func (m Mapping) ToStatus(err error) error {
	if err == nil {
		return nil
	}
	return status.Error(m.Code(err), err.Error())
}

// Code is the code ToStatus gives err.
func (m Mapping) Code(err error) codes.Code {
	for _, s := range m.NotFound {
		if errors.Is(err, s) {
			return codes.NotFound
		}
	}
	switch {
	case m.Invalid != nil && m.Invalid(err):
		return codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// FromStatus turns an error a client call returned into one errors.Is can
// test: NotFound wraps notFound, Canceled and DeadlineExceeded wrap
// context.Canceled and context.DeadlineExceeded. The status stays
// reachable (status.Code, status.FromError still work), and errors that are
// not statuses, or carry other codes, are returned as they are. nil stays
// nil.
//
// Canceled and DeadlineExceeded come both from the server and from the
// client's own gRPC machinery when the caller's context ends; either way
// the caller asked a context question and gets a context answer.
func FromStatus(err error, notFound error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.NotFound:
		kind = notFound
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	}
	if kind == nil {
		return err
	}
	return &wireError{kind: kind, st: st}
}

// wireError is a sentinel that arrived as a status.
type wireError struct {
	kind error
	st   *status.Status
}

// Error keeps the server's message, which usually names what was not
// found, but not when it is only the sentinel again ("context canceled
// (context canceled)").
func (e *wireError) Error() string {
	msg := e.st.Message()
	if msg == "" || msg == e.kind.Error() {
		return e.kind.Error()
	}
	return e.kind.Error() + " (" + msg + ")"
}

func (e *wireError) Unwrap() error { return e.kind }

// GRPCStatus lets status.Code and status.FromError see through the
// translation, so code that still switches on codes keeps working.
func (e *wireError) GRPCStatus() *status.Status { return e.st }
