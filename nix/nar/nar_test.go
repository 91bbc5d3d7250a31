package nar

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// build writes a NAR with the given calls.
func build(t testing.TB, f func(w *Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := f(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// toks encodes raw tokens, for hand-made (also malformed) NARs.
func toks(ss ...string) []byte {
	var b bytes.Buffer
	for _, s := range ss {
		binary.Write(&b, binary.LittleEndian, uint64(len(s)))
		b.WriteString(s)
		b.Write(make([]byte, padLen(uint64(len(s)))))
	}
	return b.Bytes()
}

func str(s string) io.Reader { return strings.NewReader(s) }

func complicated(w *Writer) error {
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

// Fixtures of Tvix's nix-compat and nar-bridge, rebuilt here; sizes and
// hashes from the reference digest.
var fixtures = []struct {
	name   string
	size   int
	sha256 string
	build  func(w *Writer) error
}{
	{"helloworld", 128, "03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040",
		func(w *Writer) error { return w.File(false, 12, str("Hello World!")) }},
	{"symlink", 136, "097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1",
		func(w *Writer) error { return w.Symlink([]byte("/nix/store/somewhereelse")) }},
	{"complicated", 840, "ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a", complicated},
	{"emptydirectory", 96, "a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a",
		func(w *Writer) error { return errors.Join(w.Directory(), w.Leave()) }},
	{"onebyteregular", 120, "730850a811259dbf3a68dc2ee87a79aa6cae9f71375edf396f9d7a91fbe9134d",
		func(w *Writer) error { return w.File(false, 1, str("\x01")) }},
	{"onebyteexecutable", 152, "",
		func(w *Writer) error { return w.File(true, 1, str("\x01")) }},
}

func TestFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			b := build(t, fx.build)
			sum := sha256.Sum256(b)
			if len(b) != fx.size || (fx.sha256 != "" && hex.EncodeToString(sum[:]) != fx.sha256) {
				t.Fatalf("NAR is %d bytes, sha256 %x; want %d, %s", len(b), sum, fx.size, fx.sha256)
			}
			if got := roundTrip(t, b); !bytes.Equal(got, b) {
				t.Fatalf("read+write changed the NAR:\n%q\n%q", b, got)
			}
		})
	}
}

func TestHelloWorldBytes(t *testing.T) {
	want := toks("nix-archive-1", "(", "type", "regular", "contents", "Hello World!", ")")
	if got := build(t, fixtures[0].build); !bytes.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// roundTrip reads b with Reader and writes what it yields with Writer.
func roundTrip(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out)
	r := NewReader(bytes.NewReader(b))
	for {
		n, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n.Depth > 0 && n.Kind != KindEndDirectory {
			if err := w.Entry(n.Name); err != nil {
				t.Fatal(err)
			}
		}
		switch n.Kind {
		case KindFile:
			err = w.File(n.Executable, n.Size, n.Contents)
		case KindSymlink:
			err = w.Symlink(n.Target)
		case KindDirectory:
			err = w.Directory()
		case KindEndDirectory:
			err = w.Leave()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestReaderWalk(t *testing.T) {
	b := build(t, complicated)
	r := NewReader(bytes.NewReader(b))
	var got []string
	for {
		n, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%d %s %q %q", n.Depth, n.Kind, n.Path(), n.Name)
		switch n.Kind {
		case KindSymlink:
			s += " -> " + string(n.Target)
		case KindFile:
			s += fmt.Sprintf(" %d", n.Size)
		}
		got = append(got, s)
	}
	want := []string{
		`0 directory "" ""`,
		`1 file ".keep" ".keep" 0`,
		`1 symlink "aa" "aa" -> /nix/store/somewhereelse`,
		`1 directory "keep" "keep"`,
		`2 file "keep/.keep" ".keep" 0`,
		`1 end of directory "keep" "keep"`,
		`0 end of directory "" ""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("walk:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.Offset() != uint64(len(b)) {
		t.Errorf("Offset = %d, want %d", r.Offset(), len(b))
	}
}

func TestReaderPartialContents(t *testing.T) {
	b := build(t, func(w *Writer) error {
		return errors.Join(w.Directory(),
			w.Entry([]byte("a")), w.File(true, 5, str("hello")),
			w.Entry([]byte("b")), w.File(false, 3, str("xyz")),
			w.Leave())
	})
	r := NewReader(bytes.NewReader(b))
	r.Next()
	n, _ := r.Next()
	p := make([]byte, 2)
	if _, err := io.ReadFull(n.Contents, p); err != nil || string(p) != "he" || !n.Executable {
		t.Fatalf("read a: %q %v", p, err)
	}
	n, err := r.Next() // skips the rest of a
	if err != nil || n.Path() != "b" {
		t.Fatalf("after partial read: %v %v", n, err)
	}
	all, err := io.ReadAll(n.Contents)
	if err != nil || string(all) != "xyz" {
		t.Fatalf("read b: %q %v", all, err)
	}
}

func TestWriterMisuse(t *testing.T) {
	cases := []struct {
		name, want string
		f          func(w *Writer) error
	}{
		{"unsorted", "not sorted", func(w *Writer) error {
			return errors.Join(w.Directory(), w.Entry([]byte("b")), w.Symlink([]byte("x")), w.Entry([]byte("a")))
		}},
		{"duplicate", "duplicate", func(w *Writer) error {
			return errors.Join(w.Directory(), w.Entry([]byte("a")), w.Symlink([]byte("x")), w.Entry([]byte("a")))
		}},
		{"dotdot", "name is . or ..", func(w *Writer) error { return errors.Join(w.Directory(), w.Entry([]byte(".."))) }},
		{"slash", "contains /", func(w *Writer) error { return errors.Join(w.Directory(), w.Entry([]byte("a/b"))) }},
		{"empty name", "empty name", func(w *Writer) error { return errors.Join(w.Directory(), w.Entry(nil)) }},
		{"short file", "want 5", func(w *Writer) error { return w.File(false, 5, str("abc")) }},
		{"long file", "more than the 2 bytes", func(w *Writer) error { return w.File(false, 2, str("abc")) }},
		{"two roots", "already complete", func(w *Writer) error { return errors.Join(w.Symlink([]byte("a")), w.Symlink([]byte("b"))) }},
		{"node without entry", "call Entry first", func(w *Writer) error { return errors.Join(w.Directory(), w.Symlink([]byte("a"))) }},
		{"empty target", "empty symlink target", func(w *Writer) error { return w.Symlink(nil) }},
		{"unclosed", "incomplete", func(w *Writer) error { return w.Directory() }},
		{"leave root file", "no open directory", func(w *Writer) error { return errors.Join(w.File(false, 0, str("")), w.Leave()) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter(io.Discard)
			err := errors.Join(tc.f(w), w.Close())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// malformed NARs, each with the error it must produce.
func malformed() []struct {
	name, want string
	nar        []byte
} {
	hello := toks("nix-archive-1", "(", "type", "regular", "contents", "Hello World!", ")")
	dir := func(entries ...string) []byte {
		return append(toks(append([]string{"nix-archive-1", "(", "type", "directory"}, entries...)...), toks(")")...)
	}
	ent := func(name string) []string {
		return []string{"entry", "(", "name", name, "node", "(", "type", "symlink", "target", "t", ")", ")"}
	}
	cat := func(ss ...[]string) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s...)
		}
		return out
	}
	nonzeroPad := bytes.Clone(hello)
	nonzeroPad[len(nonzeroPad)-16-1] = 1 // last padding byte of "Hello World!", before ")"
	huge := toks("nix-archive-1", "(", "type", "symlink", "target")
	huge = binary.LittleEndian.AppendUint64(huge, 1<<40)
	return []struct {
		name, want string
		nar        []byte
	}{
		{"empty", "empty input", nil},
		{"bad magic", "bad NAR magic", toks("nix-archive-2", "(", "type", "regular", "contents", "", ")")},
		{"magic too long", "longer than", toks(strings.Repeat("x", 100))},
		// A compressed NAR would read as a magic of a few exabytes.
		{"gzip", "this is gzip-compressed data, not a NAR", gzipped(hello)},
		{"xz", "this is xz-compressed data, not a NAR", append([]byte("\xfd7zXZ\x00"), hello...)},
		{"zstd", "this is zstd-compressed data, not a NAR", append([]byte("\x28\xb5\x2f\xfd"), hello...)},
		{"unsorted", "not sorted", dir(cat(ent("b"), ent("a"))...)},
		{"duplicate", "duplicate entry", dir(cat(ent("a"), ent("a"))...)},
		{"dotdot", "name is . or ..", dir(ent("..")...)},
		{"dot", "name is . or ..", dir(ent(".")...)},
		{"slash", "contains /", dir(ent("a/b")...)},
		{"nul", "contains NUL", dir(ent("a\x00b")...)},
		{"empty name", "empty name", dir(ent("")...)},
		{"long name", "longer than the 255", dir(ent(strings.Repeat("n", 256))...)},
		{"truncated", "truncated", hello[:len(hello)-30]},
		{"truncated in contents", "truncated NAR in contents", hello[:100]},
		{"truncated token", "truncated", hello[:len(hello)-5]},
		{"non-zero padding", "non-zero padding", nonzeroPad},
		{"trailing data", "trailing data", append(bytes.Clone(hello), 0)},
		{"unknown type", "unknown type", toks("nix-archive-1", "(", "type", "fifo", ")")},
		{"executable marker", "executable marker must be empty", toks("nix-archive-1", "(", "type", "regular", "executable", "1", "contents", "", ")")},
		{"fields out of order", `expected "contents"`, toks("nix-archive-1", "(", "type", "regular", "foo", "", ")")},
		{"empty target", "empty symlink target", toks("nix-archive-1", "(", "type", "symlink", "target", "", ")")},
		{"huge token", "longer than the 4095", huge},
		{"missing close", `expected ")"`, toks("nix-archive-1", "(", "type", "symlink", "target", "x", "(")},
		{"garbage in dir", `expected "entry" or ")"`, dir("name")},
		{"entry without name", `expected "name"`, dir("entry", "(", "node")},
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range malformed() {
		t.Run(tc.name, func(t *testing.T) {
			err := drain(tc.nar)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(tc.name, "truncated") && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("truncation error %v is not io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// Every proper prefix of a valid NAR is an error, never a silent success.
func TestEveryTruncation(t *testing.T) {
	b := build(t, complicated)
	for i := 0; i < len(b); i++ {
		if err := drain(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("prefix of %d bytes: error %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
}

// drain reads a NAR to the end, contents included.
func drain(b []byte) error {
	r := NewReader(bytes.NewReader(b))
	for {
		n, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n.Kind == KindFile {
			if _, err := io.Copy(io.Discard, n.Contents); err != nil {
				return err
			}
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(build(f, fx.build))
	}
	for _, m := range malformed() {
		f.Add(m.nar)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if drain(b) != nil {
			return
		}
		// Only canonical NARs are accepted, so rewriting one is the identity.
		if got := roundTrip(t, b); !bytes.Equal(got, b) {
			t.Fatalf("accepted a NAR that does not round-trip:\n%q\n%q", b, got)
		}
	})
}

func TestEmbeddedReader(t *testing.T) {
	b := build(t, complicated)
	stream := bufio.NewReaderSize(bytes.NewReader(append(bytes.Clone(b), "rest of the stream"...)), 16)
	r := NewEmbeddedReader(stream)
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if r.Offset() != uint64(len(b)) {
		t.Fatalf("consumed %d bytes, NAR has %d", r.Offset(), len(b))
	}
	rest, _ := io.ReadAll(stream)
	if string(rest) != "rest of the stream" {
		t.Fatalf("left %q", rest)
	}
}

// Sources that return data in odd pieces, or with the final error early,
// must not change what is read.
func TestOddReaders(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 100000/16+1)[:100003]
	b := build(t, func(w *Writer) error {
		return errors.Join(w.Directory(),
			w.Entry([]byte("big")), w.File(true, uint64(len(big)), str(big)),
			w.Entry([]byte("link")), w.Symlink([]byte("big")),
			w.Entry([]byte("sub")), w.Directory(), w.Entry([]byte("x")), w.File(false, 1, str("x")), w.Leave(),
			w.Leave())
	})
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
		"timeout":  func(r io.Reader) io.Reader { return iotest.TimeoutReader(iotest.OneByteReader(r)) },
	} {
		r := NewReader(wrap(bytes.NewReader(b)))
		var out bytes.Buffer
		w := NewWriter(&out)
		err := copyNAR(w, r)
		if name == "timeout" {
			if !errors.Is(err, iotest.ErrTimeout) {
				t.Errorf("%s: error %v, want the source's error", name, err)
			}
			continue
		}
		if err != nil || w.Close() != nil || !bytes.Equal(out.Bytes(), b) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func copyNAR(w *Writer, r *Reader) error {
	for {
		n, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n.Depth > 0 && n.Kind != KindEndDirectory {
			if err := w.Entry(n.Name); err != nil {
				return err
			}
		}
		switch n.Kind {
		case KindFile:
			err = w.File(n.Executable, n.Size, n.Contents)
		case KindSymlink:
			err = w.Symlink(n.Target)
		case KindDirectory:
			err = w.Directory()
		case KindEndDirectory:
			err = w.Leave()
		}
		if err != nil {
			return err
		}
	}
}

// A hash.Hash destination takes its own path through the writer (small
// buffer, large contents copied past it): it must hash exactly the bytes
// another destination receives, short and long files, errors included.
func TestHashDestination(t *testing.T) {
	sizes := []int{0, 1, 100, 400, 511, 512, 513, 600, 5000, 70000, 300000}
	tree := func(w *Writer) error {
		errs := []error{w.Directory()}
		for i, n := range sizes {
			contents := bytes.Repeat([]byte{byte(i + 1)}, n)
			errs = append(errs, w.Entry([]byte(fmt.Sprintf("f%02d", i))), w.File(i%2 == 1, uint64(n), bytes.NewReader(contents)))
		}
		return errors.Join(append(errs, w.Leave())...)
	}
	want := sha256.Sum256(build(t, tree))
	h := sha256.New()
	w := NewWriter(h)
	if err := tree(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("hash destination: sha256 %x, want %x", got, want)
	}
	w = NewWriter(sha256.New())
	if err := w.File(false, 1000, bytes.NewReader(make([]byte, 999))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short contents to a hash: %v, want io.ErrUnexpectedEOF", err)
	}
	w = NewWriter(sha256.New())
	if err := w.File(false, 1000, bytes.NewReader(make([]byte, 1001))); err == nil {
		t.Error("surplus contents to a hash: no error")
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}
