package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var errTransient, errFinal = errors.New("transient"), errors.New("final")

func TestDo(t *testing.T) {
	p := Policy{Budget: 200 * time.Millisecond, First: time.Millisecond, Max: 20 * time.Millisecond,
		Retryable: func(err error) bool { return errors.Is(err, errTransient) }}
	for _, tc := range []struct {
		name     string
		fails    int   // transient failures before success
		final    error // returned after them instead of success
		tries    int
		wantErr  error
		contains string
	}{
		{"first try", 0, nil, 1, nil, ""},
		{"recovers", 3, nil, 4, nil, ""},
		{"final error is not retried", 2, errFinal, 3, errFinal, ""},
		{"budget spent", 1 << 30, nil, 0, errTransient, "gave up after"},
	} {
		tries := 0
		err := p.Do(context.Background(), tc.name, func(context.Context) error {
			tries++
			if tries <= tc.fails {
				return errTransient
			}
			return tc.final
		})
		if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
		if tc.contains != "" && (err == nil || !strings.Contains(err.Error(), tc.contains)) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.contains)
		}
		if tc.tries > 0 && tries != tc.tries {
			t.Errorf("%s: %d tries, want %d", tc.name, tries, tc.tries)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Do(ctx, "cancelled", func(context.Context) error { return errTransient }); !errors.Is(err, errTransient) {
		t.Errorf("cancelled: %v", err)
	}
}
