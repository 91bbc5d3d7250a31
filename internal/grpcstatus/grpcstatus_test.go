package grpcstatus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	errMissing = errors.New("not found")
	errOther   = errors.New("path info not found")
	errBad     = errors.New("invalid")
)

var mapping = Mapping{
	NotFound: []error{errMissing, errOther},
	Invalid:  func(err error) bool { return errors.Is(err, errBad) },
}

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"not found", fmt.Errorf("get x: %w", errMissing), codes.NotFound},
		{"second sentinel", fmt.Errorf("get x: %w", errOther), codes.NotFound},
		{"invalid", fmt.Errorf("put x: %w", errBad), codes.InvalidArgument},
		{"canceled", fmt.Errorf("read x: %w", context.Canceled), codes.Canceled},
		{"deadline", fmt.Errorf("read x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"not found beats canceled", fmt.Errorf("%w, %w", errMissing, context.Canceled), codes.NotFound},
		{"other", io.ErrUnexpectedEOF, codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mapping.ToStatus(tc.err)
			st, ok := status.FromError(got)
			if !ok || st.Code() != tc.want || st.Message() != tc.err.Error() {
				t.Fatalf("ToStatus(%v) = %v, want code %v with the message kept", tc.err, got, tc.want)
			}
		})
	}
	if err := mapping.ToStatus(nil); err != nil {
		t.Fatalf("ToStatus(nil) = %v", err)
	}
	if c := (Mapping{}).Code(errBad); c != codes.Internal {
		t.Fatalf("zero Mapping: code %v, want Internal", c)
	}
}

func TestFromStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		is      error // errors.Is must hold
		msg     string
		code    codes.Code
		rawCode bool // returned unchanged
	}{
		{"not found", status.Error(codes.NotFound, "blob b3:xyz"), errMissing, "not found (blob b3:xyz)", codes.NotFound, false},
		{"canceled", status.Error(codes.Canceled, "context canceled"), context.Canceled, "context canceled", codes.Canceled, false},
		{"deadline", status.Error(codes.DeadlineExceeded, "upstream timed out"), context.DeadlineExceeded, "context deadline exceeded (upstream timed out)", codes.DeadlineExceeded, false},
		{"wrapped status", fmt.Errorf("stat: %w", status.Error(codes.NotFound, "x")), errMissing, "not found (stat: rpc error: code = NotFound desc = x)", codes.NotFound, false},
		{"other code", status.Error(codes.InvalidArgument, "bad digest"), nil, "rpc error: code = InvalidArgument desc = bad digest", codes.InvalidArgument, true},
		{"not a status", io.EOF, io.EOF, "EOF", codes.Unknown, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromStatus(tc.err, errMissing)
			if tc.is != nil && !errors.Is(got, tc.is) {
				t.Fatalf("FromStatus(%v) = %v, not errors.Is %v", tc.err, got, tc.is)
			}
			if got.Error() != tc.msg {
				t.Fatalf("FromStatus(%v) says %q, want %q", tc.err, got.Error(), tc.msg)
			}
			if c := status.Code(got); c != tc.code {
				t.Fatalf("status.Code(FromStatus(%v)) = %v, want %v", tc.err, c, tc.code)
			}
			if tc.rawCode && got != tc.err {
				t.Fatalf("FromStatus(%v) = %v, want it unchanged", tc.err, got)
			}
		})
	}
	if err := FromStatus(nil, errMissing); err != nil {
		t.Fatalf("FromStatus(nil) = %v", err)
	}
	if err := FromStatus(status.Error(codes.NotFound, "x"), errMissing); errors.Is(err, errOther) || errors.Is(err, context.Canceled) {
		t.Fatalf("NotFound = %v, wraps more than the given sentinel", err)
	}
}

// TestRoundTrip is what a client sees of a server's error, minus the
// transport (castoregrpc and pathinfo test it over a socket).
func TestRoundTrip(t *testing.T) {
	for _, sent := range []error{errMissing, context.Canceled, context.DeadlineExceeded} {
		got := FromStatus(mapping.ToStatus(fmt.Errorf("serving: %w", sent)), errMissing)
		if !errors.Is(got, sent) {
			t.Errorf("%v arrived as %v", sent, got)
		}
	}
}
