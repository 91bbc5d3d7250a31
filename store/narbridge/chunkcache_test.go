package narbridge

import "testing"

func TestDefaultChunkCache(t *testing.T) {
	for _, c := range []struct{ total, want int64 }{
		{1 << 30, 256 << 20},  // a small VM: the floor
		{8 << 30, 1 << 30},    // a laptop
		{24 << 30, 3 << 30},   // this benchmark machine
		{512 << 30, 16 << 30}, // a large server: the ceiling
	} {
		if got := defaultChunkCache(c.total); got != c.want {
			t.Errorf("%d MiB of memory: cache %d MiB, want %d", c.total>>20, got>>20, c.want>>20)
		}
	}
	if got := DefaultChunkCache(); got < 256<<20 || got > 16<<30 {
		t.Errorf("this machine's default %d MiB is outside 256 MiB..16 GiB", got>>20)
	}
}
