package nixbase32

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestVectors(t *testing.T) {
	for _, tc := range []struct{ hex, nb32 string }{
		{"", ""},
		{"1f", "0z"},
		{"8a12321522fd91efbd60ebb2481af88580f61600", "00bgd045z0d4icpbc2yyz4gx48ak44la"},
		{"b3a24de97a8fdbc835b9833169501030b8977031bcb54b3b3ac13740f846ab30", "0c5b8vw40dy178xlpddw65q9gf1h2186jcc3p4swinwggbllv8mk"},
	} {
		raw, _ := hex.DecodeString(tc.hex)
		if got := EncodeToString(raw); got != tc.nb32 {
			t.Errorf("encode %s = %q, want %q", tc.hex, got, tc.nb32)
		}
		got, err := DecodeString(tc.nb32)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("decode %q = %x, %v; want %s", tc.nb32, got, err, tc.hex)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{"zz", "c0", "0", "0zz", "0e", "!!"} {
		if b, err := DecodeString(s); err == nil {
			t.Errorf("decode %q = %x, want error", s, b)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0x1f})
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := EncodeToString(b)
		back, err := DecodeString(s)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip %x -> %q -> %x, %v", b, s, back, err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add("00bgd045z0d4icpbc2yyz4gx48ak44la")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeString(s)
		if err == nil && EncodeToString(b) != s {
			t.Fatalf("decode %q accepted but re-encodes to %q", s, EncodeToString(b))
		}
	})
}

func TestAppendEncodeMatchesEncodeToString(t *testing.T) {
	for _, in := range [][]byte{nil, {0}, {1, 2, 3}, make([]byte, 20), []byte("0123456789abcdefghijklmnopqrstuv")} {
		got := string(AppendEncode([]byte("pre-"), in))
		if want := "pre-" + EncodeToString(in); got != want {
			t.Errorf("AppendEncode(%x) = %q, want %q", in, got, want)
		}
	}
}
