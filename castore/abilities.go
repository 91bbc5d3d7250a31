package castore

import "context"

// Decorators (read-through layers, caches, write-behind queues) wrap a
// service and must not hide what it can do: a wrapper that dropped Sync
// once let an import record directories before their blobs were durable.
// A wrapper either implements an optional interface itself, forwarding it
// to the right inner service, or offers Unwrap so As can look through it.
// Implementing it itself wins: a wrapper that changes what an ability
// means (a queue in front of a Put) must not be looked through.

// Unwrapper is implemented by decorators that let callers reach the
// service they wrap.
type Unwrapper interface {
	Unwrap() any
}

// As finds the first service in svc's chain of wrappers (svc itself
// first) that implements T.
func As[T any](svc any) (T, bool) {
	for svc != nil {
		if t, ok := svc.(T); ok {
			return t, true
		}
		u, ok := svc.(Unwrapper)
		if !ok {
			break
		}
		svc = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Locality is implemented by services that know whether their calls stay
// in this process (memory, embedded files) or cross to another one (gRPC,
// binary caches). Callers choose strategies by it, e.g. whether asking
// before writing is cheaper than writing.
type Locality interface {
	InProcess() bool
}

// InProcess says whether svc answers in this process; a service that does
// not say is taken as remote, the cautious choice.
func InProcess(svc any) bool {
	l, ok := As[Locality](svc)
	return ok && l.InProcess()
}

// Materializer is implemented by read-through blob services, which lend
// a far store's blobs: Materialize copies one into the near store, so it
// stays readable when the far one is gone (a substituted closure).
type Materializer interface {
	Materialize(ctx context.Context, d Digest) error
}
