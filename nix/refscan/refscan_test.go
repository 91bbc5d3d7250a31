package refscan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/storepath"
)

func paths(t testing.TB, n int, rng *rand.Rand) []storepath.StorePath {
	out := make([]storepath.StorePath, n)
	for i := range out {
		for j := range out[i].Digest {
			out[i].Digest[j] = byte(rng.Uint32())
		}
		out[i].Name = fmt.Sprintf("p%d", i)
	}
	return out
}

// naive is the obvious definition: candidate hash parts that occur in b.
func naive(b []byte, cands []storepath.StorePath) []storepath.StorePath {
	var out []storepath.StorePath
	for _, c := range cands {
		if bytes.Contains(b, []byte(c.HashPart())) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b storepath.StorePath) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func scanChunked(b []byte, cands []storepath.StorePath, rng *rand.Rand) []storepath.StorePath {
	s := New(cands)
	for len(b) > 0 {
		n := min(len(b), 1+rng.IntN(70))
		s.Write(b[:n])
		b = b[n:]
	}
	return s.Found()
}

func TestAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cands := paths(t, 50, rng)
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	for round := 0; round < 300; round++ {
		// Base32-dense filler makes near misses likely; binary filler
		// exercises the skipping.
		var b []byte
		for len(b) < 4000 {
			switch rng.IntN(4) {
			case 0:
				b = append(b, cands[rng.IntN(len(cands))].HashPart()...)
			case 1:
				h := []byte(cands[rng.IntN(len(cands))].HashPart())
				h[rng.IntN(len(h))] = alphabet[rng.IntN(32)] // maybe a near miss
				b = append(b, h[:rng.IntN(len(h))]...)
			case 2:
				for range rng.IntN(50) {
					b = append(b, alphabet[rng.IntN(32)])
				}
			default:
				for range rng.IntN(50) {
					b = append(b, byte(rng.Uint32()))
				}
			}
		}
		want := naive(b, cands)
		if got := scanChunked(b, cands, rng); !slices.Equal(got, want) {
			t.Fatalf("round %d: found %v, want %v", round, got, want)
		}
		s := New(cands)
		s.Write(b)
		if got := s.Found(); !slices.Equal(got, want) {
			t.Fatalf("round %d, one write: found %v, want %v", round, got, want)
		}
	}
}

func TestEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	c := paths(t, 3, rng)
	h := c[1].HashPart()
	for _, tc := range []struct {
		name string
		in   []string
		want []storepath.StorePath
	}{
		{"exact", []string{h}, c[1:2]},
		{"split in every place", strings.Split(h, ""), c[1:2]},
		{"inside base32 run", []string{"0000" + h + "zzzz"}, c[1:2]},
		{"truncated", []string{h[:31]}, nil},
		{"in a store path", []string{"/nix/store/" + h + "-p1/bin/sh"}, c[1:2]},
		{"empty", nil, nil},
		{"overlapping", []string{c[0].HashPart()[:16] + h + c[2].HashPart()}, c[1:]},
	} {
		s := New(c)
		for _, p := range tc.in {
			s.Write([]byte(p))
		}
		if got := s.Found(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: found %v, want %v", tc.name, got, tc.want)
		}
	}
	s := New(nil)
	s.Write([]byte(h))
	if len(s.Found()) != 0 {
		t.Error("found something without candidates")
	}
}

// TestAgainstNix builds a derivation whose output refers to some of its
// inputs by contents, symlink target and file name, and compares Nix's
// references with a scan of the output's NAR.
func TestAgainstNix(t *testing.T) {
	nixtest.Require(t)
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		testenv.Missing(t, "busybox-static needed: %v", err)
	}
	dir := t.TempDir()
	expr := filepath.Join(dir, "refs.nix")
	if err := os.WriteFile(expr, []byte(`
let
  dep = n: builtins.toFile "refscan-dep${toString n}" "dep ${toString n}";
  d1 = dep 1; d2 = dep 2; d3 = dep 3; d4 = dep 4; d5 = dep 5;
in derivation {
  name = "refscan-test";
  system = builtins.currentSystem;
  builder = "`+busybox+`";
  inherit d1 d2 d3 d4 d5;
  args = [ "sh" "-c" ''
    set -e
    /bin/busybox mkdir -p $out/sub
    echo "contents mention $d1 here" > $out/sub/file
    /bin/busybox ln -s $d2 $out/link
    h=$(/bin/busybox basename $d3)
    /bin/busybox touch "$out/named-''${h}"
    # d4 and d5 are inputs the output does not mention.
  '' ];
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := nixtest.Text(t, "nix-build", "--no-out-link", expr)
	var inputs []string
	if err := json.Unmarshal(nixtest.Run(t, "nix-instantiate", "--eval", "--strict", "--json", "-E",
		`let dep = n: builtins.toFile "refscan-dep${toString n}" "dep ${toString n}"; in map (n: "${dep n}") [1 2 3 4 5]`), &inputs); err != nil {
		t.Fatal(err)
	}
	var cands []storepath.StorePath
	for _, s := range inputs {
		p, err := storepath.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		cands = append(cands, p)
	}
	var narBuf bytes.Buffer
	if err := nar.DumpPath(&narBuf, out); err != nil {
		t.Fatal(err)
	}
	s := New(cands)
	s.Write(narBuf.Bytes())
	var got []string
	for _, p := range s.Found() {
		got = append(got, p.String())
	}
	want := strings.Fields(nixtest.Text(t, "nix-store", "--query", "--references", out))
	slices.Sort(want)
	if !slices.Equal(got, want) || len(want) != 3 {
		t.Fatalf("references of %s: scan %v, Nix %v", out, got, want)
	}
}

func FuzzScanner(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	cands := paths(f, 4, rng)
	f.Add([]byte(cands[0].HashPart()), uint8(5))
	f.Add([]byte("xx"+cands[1].HashPart()+cands[2].HashPart()[:20]), uint8(31))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		s := New(cands)
		c := int(chunk) + 1
		for rest := b; len(rest) > 0; {
			n := min(c, len(rest))
			s.Write(rest[:n])
			rest = rest[n:]
		}
		if got, want := s.Found(), naive(b, cands); !slices.Equal(got, want) {
			t.Fatalf("found %v, want %v", got, want)
		}
	})
}

func BenchmarkScan(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	cands := paths(b, 1000, rng)
	bin := make([]byte, 16<<20)
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	dense := make([]byte, 16<<20)
	for i := range dense {
		dense[i] = alphabet[rng.IntN(32)]
	}
	for _, in := range []struct {
		name string
		b    []byte
	}{{"binary", bin}, {"base32-dense", dense}} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.b)))
			for b.Loop() {
				s := New(cands)
				for off := 0; off < len(in.b); off += 64 << 10 {
					s.Write(in.b[off:min(off+64<<10, len(in.b))])
				}
			}
		})
	}
}
