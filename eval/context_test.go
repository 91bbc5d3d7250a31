package eval

import (
	"fmt"
	"testing"
)

func TestContextUnion(t *testing.T) {
	var u ContextUnion
	if u.Context() != nil {
		t.Fatalf("empty union: %v", u.Context())
	}
	shared := NewContext("/nix/store/b", "/nix/store/a")
	u.Add(nil)
	u.Add(shared)
	u.Add(shared)
	if c := u.Context(); !sameContext(c, shared) {
		t.Errorf("one context added twice is not shared: %v", c)
	}
	// enough elements to squeeze on the way
	for i := 300; i > 0; i-- {
		u.Add(Context{fmt.Sprintf("/nix/store/x%03d", i%100)})
		u.Add(shared)
	}
	c := u.Context()
	if len(c) != 102 {
		t.Fatalf("got %d elements, want 102", len(c))
	}
	for i := 1; i < len(c); i++ {
		if c[i-1] >= c[i] {
			t.Fatalf("not sorted and unique at %d: %q, %q", i, c[i-1], c[i])
		}
	}
	if c[0] != "/nix/store/a" || c[101] != "/nix/store/x099" {
		t.Errorf("ends: %q, %q", c[0], c[101])
	}
	var v ContextUnion
	v.AddString("=/nix/store/d.drv")
	v.AddString("/nix/store/c")
	if fmt.Sprint(v.Context()) != "[/nix/store/c =/nix/store/d.drv]" {
		t.Errorf("AddString: %v", v.Context())
	}
}
