package touchlog

import (
	"testing"
	"time"
)

func TestSinceHoldAndPrune(t *testing.T) {
	l := New()
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	a, b, c := [32]byte{1}, [32]byte{2}, [32]byte{3}
	l.Touch(a)
	now = now.Add(time.Minute)
	release := Hold(l, b)
	cases := []struct {
		name  string
		d     [32]byte
		since time.Time
		want  bool
	}{
		{"touched at the epoch", a, time.Unix(1000, 0), true},
		{"touched before the epoch", a, time.Unix(1001, 0), false},
		{"held, whatever the epoch", b, now.Add(time.Hour), true},
		{"never touched", c, time.Unix(0, 0), false},
	}
	for _, tc := range cases {
		if got := l.Since(tc.d, tc.since); got != tc.want {
			t.Errorf("%s: Since = %v, want %v", tc.name, got, tc.want)
		}
	}
	release()
	release() // a second release is harmless
	if l.Since(b, now.Add(time.Second)) {
		t.Error("released object still held")
	}
	// Touches older than MaxAge are forgotten as new ones come.
	now = now.Add(MaxAge + time.Hour)
	for i := range 1 << 16 {
		l.Touch([32]byte{9, byte(i), byte(i >> 8)})
	}
	if l.Since(a, time.Unix(0, 0)) {
		t.Error("a touch older than MaxAge was kept")
	}
	if n := l.Len(); n != 1<<16 {
		t.Errorf("Len = %d, want %d", n, 1<<16)
	}
}
