package narcastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// pattern is an endless deterministic byte stream that is never in memory
// as a whole.
type pattern struct{ off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	n, _ := p.ReadAt(b, p.off)
	p.off += int64(n)
	return n, nil
}

func (p *pattern) ReadAt(b []byte, off int64) (int, error) {
	for i := range b {
		x := off + int64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	return len(b), nil
}

func tokens(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
		b = append(b, make([]byte, (8-len(s)%8)%8)...)
	}
	return b
}

// bigFileNAR streams the NAR of one file of size bytes (size%8 == 0).
func bigFileNAR(size int64) io.Reader {
	head := binary.LittleEndian.AppendUint64(tokens("nix-archive-1", "(", "type", "regular", "contents"), uint64(size))
	return io.MultiReader(bytes.NewReader(head), io.LimitReader(&pattern{}, size), bytes.NewReader(tokens(")")))
}

func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// patternBlobs serves every digest as size bytes of the pattern, so Render
// can be fed a blob far bigger than any buffer.
type patternBlobs struct {
	memBlobs
	size int64
}

type sectionBlob struct{ *io.SectionReader }

func (sectionBlob) Close() error { return nil }

func (p *patternBlobs) Open(context.Context, castore.Digest) (castore.BlobReader, error) {
	return sectionBlob{io.NewSectionReader(&pattern{}, 0, p.size)}, nil
}

// Neither direction may hold a file in memory: moving a 64 MiB file must
// allocate only a small fraction of that.
func TestStreamingMemory(t *testing.T) {
	const size = 64 << 20
	ctx := context.Background()
	// A blob service that neither stores nor hashes: what is measured is
	// the NAR parsing, copying and hashing of the NAR itself.
	blobs := &memBlobs{discard: true, nohash: true}
	before := allocated()
	root, narSize, sum, err := Ingest(ctx, bigFileNAR(size), blobs, newCountingDirs())
	alloc := allocated() - before
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, bigFileNAR(size))
	if narSize != size+128-16 || [32]byte(h.Sum(nil)) != sum || root.GetFile().GetSize() != size {
		t.Fatalf("ingest: size %d, root %v", narSize, root)
	}
	if alloc > 8<<20 {
		t.Errorf("Ingest of a %d MiB file allocated %d MiB", size>>20, alloc>>20)
	}
	t.Logf("Ingest of %d MiB allocated %d KiB", size>>20, alloc>>10)

	node := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: make([]byte, 32), Size: size}}}
	before = allocated()
	n, rsum, err := CalculateNAR(ctx, node, &patternBlobs{size: size}, newCountingDirs())
	alloc = allocated() - before
	if err != nil || n != narSize || rsum != sum {
		t.Fatalf("CalculateNAR = %d %x %v, want %d %x", n, rsum, err, narSize, sum)
	}
	if alloc > 8<<20 {
		t.Errorf("Render of a %d MiB file allocated %d MiB", size>>20, alloc>>20)
	}
	t.Logf("Render of %d MiB allocated %d KiB", size>>20, alloc>>10)
}
