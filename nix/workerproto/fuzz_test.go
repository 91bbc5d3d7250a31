package workerproto

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReader reads arbitrary bytes as every kind of value: no panic, no
// allocation past the bounds, and what a Writer writes reads back.
func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.String("hello")
	w.Strings([]string{"a", "bc"})
	w.Uint64(1)
	pi := PathInfo{Path: "/nix/store/x", NarHash: "00", References: []string{"/nix/store/y"}, Sigs: []string{"k:s"}}
	w.WritePathInfo(pi, true)
	fw := w.Framed()
	fw.Write([]byte("framed"))
	fw.Close()
	w.Flush()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		r.ResetBudget(1 << 20)
		_ = r.String("s")
		_ = r.Strings("l", 1<<10)
		_ = r.Bool("b")
		_ = r.ReadPathInfo(true)
		io.Copy(io.Discard, r.Framed())
		_, _ = r.ReadBasicDerivation()
		_ = r.StringMap("m")
	})
}

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	pi := PathInfo{Path: "/nix/store/x", Deriver: "/nix/store/d.drv", NarHash: "ab", References: []string{"/nix/store/z", "/nix/store/y"},
		RegistrationTime: 7, NarSize: 99, Ultimate: true, Sigs: []string{"k:s"}, CA: "fixed:sha256:0"}
	w.WritePathInfo(pi, true)
	fw := w.Framed()
	fw.Write([]byte("abc"))
	fw.Write(nil)
	fw.Write([]byte("defgh"))
	fw.Close()
	w.String("after")
	w.Flush()
	if b.Len()%8 != 0 {
		t.Fatalf("stream of %d bytes is not padded", b.Len())
	}
	r := NewReader(&b)
	got := r.ReadPathInfo(true)
	if got.Path != pi.Path || got.Deriver != pi.Deriver || got.NarSize != 99 || !got.Ultimate || got.CA != pi.CA ||
		len(got.References) != 2 || got.References[0] != "/nix/store/y" {
		t.Fatalf("path info %+v", got)
	}
	data, err := io.ReadAll(r.Framed())
	if err != nil || string(data) != "abcdefgh" {
		t.Fatalf("framed %q %v", data, err)
	}
	if s := r.String("after"); s != "after" || r.Err() != nil {
		t.Fatalf("after the frames: %q %v", s, r.Err())
	}
}

func TestBoundsAndPadding(t *testing.T) {
	for name, in := range map[string][]byte{
		"non-zero padding": {1, 0, 0, 0, 0, 0, 0, 0, 'x', 1, 0, 0, 0, 0, 0, 0},
		"too long":         {0, 0, 0, 0, 0, 1, 0, 0},
		"truncated":        {5, 0, 0, 0, 0, 0, 0, 0, 'a', 'b'},
	} {
		r := NewReader(bytes.NewReader(in))
		r.String("field")
		if r.Err() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	r := NewReader(bytes.NewReader(make([]byte, 64)))
	r.ResetBudget(4)
	var b bytes.Buffer
	w := NewWriter(&b)
	w.String("longer than four")
	w.Flush()
	r = NewReader(&b)
	r.ResetBudget(4)
	r.String("field")
	if r.Err() == nil {
		t.Error("budget not enforced")
	}
	var flag bytes.Buffer
	w = NewWriter(&flag)
	w.Uint64(2)
	w.Flush()
	r = NewReader(&flag)
	if r.Bool("flag"); r.Err() == nil {
		t.Error("flag 2 accepted")
	}
}

func TestDerivedPaths(t *testing.T) {
	for in, want := range map[string]string{
		"/nix/store/x-a":         "/nix/store/x-a",
		"/nix/store/x-a.drv!out": "/nix/store/x-a.drv!out",
		"/nix/store/x-a.drv!*":   "/nix/store/x-a.drv!*",
		"/nix/store/x-a.drv!b,a": "/nix/store/x-a.drv!a,b",
	} {
		d, err := ParseDerivedPath(in)
		if err != nil || d.String() != want {
			t.Errorf("%s: %q %v", in, d.String(), err)
		}
	}
	for _, bad := range []string{"/nix/store/x-a!out", "/nix/store/x-a.drv!", "/nix/store/x-a.drv!a b"} {
		if _, err := ParseDerivedPath(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
