package narcastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/refscan"
	"github.com/tvix-go/tvix/nix/storepath"
)

func mustNAR(t testing.TB, f func(w *nar.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := nar.NewWriter(&buf)
	if err := errors.Join(f(w), w.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func str(s string) io.Reader { return strings.NewReader(s) }

func complicated(w *nar.Writer) error {
	return errors.Join(
		w.Directory(),
		w.Entry([]byte(".keep")), w.File(false, 0, str("")),
		w.Entry([]byte("aa")), w.Symlink([]byte("/nix/store/somewhereelse")),
		w.Entry([]byte("keep")), w.Directory(),
		w.Entry([]byte(".keep")), w.File(false, 0, str("")),
		w.Leave(),
		w.Leave(),
	)
}

func hexDigest(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIngestFixtures(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		build  func(w *nar.Writer) error
		size   uint64
		sha256 string
		root   func(t testing.TB) *castorev1.Node
		dirs   int
	}{
		{"helloworld", func(w *nar.Writer) error { return w.File(false, 12, str("Hello World!")) }, 128,
			"03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040",
			func(t testing.TB) *castorev1.Node {
				return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
					Digest: hexDigest(t, "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c"), Size: 12}}}
			}, 0},
		{"symlink", func(w *nar.Writer) error { return w.Symlink([]byte("/nix/store/somewhereelse")) }, 136,
			"097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1",
			func(t testing.TB) *castorev1.Node {
				return &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: &castorev1.SymlinkNode{Target: []byte("/nix/store/somewhereelse")}}}
			}, 0},
		{"complicated", complicated, 840, "ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a",
			func(t testing.TB) *castorev1.Node {
				return &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{
					Digest: hexDigest(t, "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a"), Size: 4}}}
			}, 2},
		{"emptydirectory", func(w *nar.Writer) error { return errors.Join(w.Directory(), w.Leave()) }, 96,
			"a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a",
			func(t testing.TB) *castorev1.Node {
				return &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{
					Digest: castore.EmptyBlobDigest.Bytes()}}}
			}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blobs, dirs := newMemBlobs(), newCountingDirs()
			in := mustNAR(t, tc.build)
			root, size, sum, err := Ingest(ctx, bytes.NewReader(in), blobs, dirs)
			if err != nil {
				t.Fatal(err)
			}
			if size != tc.size || hex.EncodeToString(sum[:]) != tc.sha256 {
				t.Fatalf("Ingest: size %d sha256 %x, want %d %s", size, sum, tc.size, tc.sha256)
			}
			if want := tc.root(t); !sameNode(root, want) {
				t.Fatalf("root = %v, want %v", root, want)
			}
			if dirs.stored() != tc.dirs {
				t.Errorf("%d directories stored, want %d", dirs.stored(), tc.dirs)
			}
			var out bytes.Buffer
			if err := Render(ctx, &out, root, blobs, dirs); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), in) {
				t.Fatalf("Render differs from the ingested NAR")
			}
			csize, csum, err := CalculateNAR(ctx, root, blobs, dirs)
			if err != nil || csize != size || csum != sum {
				t.Fatalf("CalculateNAR = %d %x %v", csize, csum, err)
			}
		})
	}
}

func sameNode(a, b *castorev1.Node) bool {
	return castore.NodeName(a) != nil == (castore.NodeName(b) != nil) &&
		a.String() == b.String()
}

func TestIngestComplicatedDirectories(t *testing.T) {
	ctx := context.Background()
	blobs, dirs := newMemBlobs(), newCountingDirs()
	if _, _, _, err := Ingest(ctx, bytes.NewReader(mustNAR(t, complicated)), blobs, dirs); err != nil {
		t.Fatal(err)
	}
	// DIRECTORY_WITH_KEEP from the Tvix fixtures.
	var keep castore.Digest
	copy(keep[:], hexDigest(t, "8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e"))
	d, err := dirs.Get(ctx, keep)
	if err != nil || len(d.GetFiles()) != 1 || string(d.Files[0].Name) != ".keep" {
		t.Fatalf("DIRECTORY_WITH_KEEP: %v %v", d, err)
	}
	if ok, _ := blobs.Has(ctx, castore.EmptyBlobDigest); !ok {
		t.Error("empty blob not stored")
	}
}

// Malformed NARs are refused and leave the directory service untouched.
func TestIngestMalformed(t *testing.T) {
	ctx := context.Background()
	good := mustNAR(t, func(w *nar.Writer) error {
		return errors.Join(w.Directory(),
			w.Entry([]byte("a")), w.Directory(), w.Entry([]byte("f")), w.File(false, 3, str("abc")), w.Leave(),
			w.Entry([]byte("b")), w.Directory(), w.Leave(),
			w.Entry([]byte("c")), w.Symlink([]byte("a/f")),
			w.Leave())
	})
	tok := func(s string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(s)))
		b = append(b, s...)
		return append(b, make([]byte, (8-len(s)%8)%8)...)
	}
	unsorted := bytes.Replace(good, tok("b"), tok("0"), 1) // "0" < "a": out of order
	dotdot := bytes.Replace(good, tok("b"), tok(".."), 1)
	slash := bytes.Replace(good, tok("c"), tok("/"), 1)
	dup := bytes.Replace(good, tok("c"), tok("b"), 1)
	badMagic := bytes.Replace(good, []byte("nix-archive-1"), []byte("nix-archive-2"), 1)
	for _, tc := range []struct {
		name, want string
		in         []byte
	}{
		{"bad magic", "bad NAR magic", badMagic},
		{"unsorted", "not sorted", unsorted},
		{"duplicate", "duplicate entry", dup},
		{"dotdot", "name is . or ..", dotdot},
		{"slash", "contains /", slash},
		{"truncated after a directory", "truncated", good[:len(good)-40]},
		{"truncated in file", "truncated", good[:bytes.Index(good, []byte("abc"))+1]},
		{"trailing data", "trailing data", append(bytes.Clone(good), make([]byte, 8)...)},
		{"empty", "empty input", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs, dirs := newMemBlobs(), newCountingDirs()
			_, _, _, err := Ingest(ctx, bytes.NewReader(tc.in), blobs, dirs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
			if dirs.stored() != 0 {
				t.Fatalf("%d directories stored after a failed ingest", dirs.stored())
			}
		})
	}
	// The good one does store its 4 directories (a, b, root; b empty).
	blobs, dirs := newMemBlobs(), newCountingDirs()
	if _, _, _, err := Ingest(ctx, bytes.NewReader(good), blobs, dirs); err != nil || dirs.stored() != 3 {
		t.Fatalf("good NAR: %v, %d directories", err, dirs.stored())
	}
}

func TestIngestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dirs := newCountingDirs()
	if _, _, _, err := Ingest(ctx, bytes.NewReader(mustNAR(t, complicated)), newMemBlobs(), dirs); !errors.Is(err, context.Canceled) || dirs.stored() != 0 {
		t.Fatalf("cancelled ingest: %v, %d dirs", err, dirs.stored())
	}
}

func TestRenderErrors(t *testing.T) {
	ctx := context.Background()
	blobs, dirs := newMemBlobs(), newCountingDirs()
	root, _, _, err := Ingest(ctx, bytes.NewReader(mustNAR(t, func(w *nar.Writer) error { return w.File(false, 12, str("Hello World!")) })), blobs, dirs)
	if err != nil {
		t.Fatal(err)
	}
	file := func(size uint64, digest []byte) *castorev1.Node {
		return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: digest, Size: size}}}
	}
	d := root.GetFile().GetDigest()
	missingDir := &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{Digest: make([]byte, 32)}}}
	for _, tc := range []struct {
		name string
		node *castorev1.Node
		is   error
		want string
	}{
		{"blob shorter than size", file(42, d), io.ErrUnexpectedEOF, "has 12 bytes, node says 42"},
		{"blob longer than size", file(2, d), nil, "has 12 bytes, node says 2"},
		{"missing blob", file(1, make([]byte, 32)), castore.ErrNotFound, "open blob"},
		{"missing directory", missingDir, castore.ErrNotFound, "directory closure"},
		{"bad digest", file(1, []byte{1, 2}), nil, "digest has 2 bytes"},
		{"empty node", &castorev1.Node{}, nil, "no directory, file or symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Render(ctx, &out, tc.node, blobs, dirs)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("error = %v, want %q / %v", err, tc.want, tc.is)
			}
		})
	}
}

// lyingBlobs reports an unknown size, so only the NAR writer can notice
// that the blob disagrees with FileNode.size.
type lyingBlobs struct{ *memBlobs }

type unsizedReader struct{ castore.BlobReader }

func (unsizedReader) Size() int64 { return -1 }

func (l lyingBlobs) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	r, err := l.memBlobs.Open(ctx, d)
	return unsizedReader{r}, err
}

func TestRenderSizeEnforcedWhileStreaming(t *testing.T) {
	ctx := context.Background()
	blobs := newMemBlobs()
	dirs := newCountingDirs()
	root, _, _, _ := Ingest(ctx, bytes.NewReader(mustNAR(t, func(w *nar.Writer) error { return w.File(false, 12, str("Hello World!")) })), blobs, dirs)
	for size, want := range map[uint64]string{42: "want 42", 2: "more than the 2 bytes"} {
		n := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: root.GetFile().GetDigest(), Size: size}}}
		err := Render(ctx, io.Discard, n, lyingBlobs{blobs}, dirs)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("size %d: error %v, want %q", size, err, want)
		}
		if size == 42 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("size 42: %v is not io.ErrUnexpectedEOF", err)
		}
	}
}

func TestWithScanner(t *testing.T) {
	var seen bytes.Buffer
	in := mustNAR(t, complicated)
	_, _, sum, err := Ingest(context.Background(), bytes.NewReader(in), newMemBlobs(), newCountingDirs(), WithScanner(&seen))
	if err != nil || !bytes.Equal(seen.Bytes(), in) || sum != sha256.Sum256(in) {
		t.Fatalf("scanner saw %d of %d bytes, err %v", seen.Len(), len(in), err)
	}
}

func FuzzIngest(f *testing.F) {
	f.Add(mustNAR(f, complicated))
	f.Add(mustNAR(f, func(w *nar.Writer) error { return w.File(true, 3, str("abc")) }))
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		blobs, dirs := newMemBlobs(), newCountingDirs()
		root, size, sum, err := Ingest(ctx, bytes.NewReader(in), blobs, dirs)
		if err != nil {
			if dirs.stored() != 0 {
				t.Fatalf("failed ingest stored %d directories", dirs.stored())
			}
			return
		}
		if size != uint64(len(in)) || sum != sha256.Sum256(in) {
			t.Fatalf("size/hash mismatch")
		}
		var out bytes.Buffer
		if err := Render(ctx, &out, root, blobs, dirs); err != nil || !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("render after ingest: %v", err)
		}
	})
}

func TestIngestFindsReferences(t *testing.T) {
	refs := []storepath.StorePath{}
	for _, b := range []string{"0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl", "6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc", "j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib", "yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl"} {
		p, err := storepath.FromBasename(b)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, p)
	}
	// curl in contents, glibc in a symlink target, zlib in an entry name;
	// openssl nowhere.
	in := mustNAR(t, func(w *nar.Writer) error {
		return errors.Join(w.Directory(),
			w.Entry([]byte("bin")), w.File(true, uint64(len("exec "+refs[0].String()+"/bin/curl")), str("exec "+refs[0].String()+"/bin/curl")),
			w.Entry([]byte("lib")), w.Symlink([]byte(refs[1].String()+"/lib")),
			w.Entry([]byte("x-"+refs[2].HashPart())), w.File(false, 0, str("")),
			w.Leave())
	})
	s := refscan.New(refs)
	if _, _, _, err := Ingest(context.Background(), bytes.NewReader(in), newMemBlobs(), newCountingDirs(), WithScanner(s)); err != nil {
		t.Fatal(err)
	}
	got := s.Found()
	if len(got) != 3 || got[0] != refs[0] || got[1] != refs[1] || got[2] != refs[2] {
		t.Fatalf("found %v", got)
	}
}
