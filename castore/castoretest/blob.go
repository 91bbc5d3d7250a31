// Package castoretest holds conformance suites every BlobService and
// DirectoryService backend must pass, so memory, file, bbolt and gRPC
// backends are held to the same behaviour.
package castoretest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"math/rand"
	"sync"
	"testing"

	"github.com/tvix-go/tvix/castore"
)

// Reference vectors (tvix castore fixtures).
var (
	HelloWorldBlob = []byte("Hello World!")
	BlobB          = func() []byte {
		b := make([]byte, 0, 255*4096)
		for i := 0; i < 4096; i++ {
			for j := 0; j < 255; j++ {
				b = append(b, byte(j))
			}
		}
		return b
	}()
)

func mustHex(s string) castore.Digest {
	b, _ := hex.DecodeString(s)
	d, _ := castore.DigestFromBytes(b)
	return d
}

// PutBlob writes data in pieces of step bytes and closes.
func PutBlob(t testing.TB, s castore.BlobService, data []byte, step int, opts ...castore.PutOption) (castore.Digest, error) {
	t.Helper()
	w, err := s.Put(context.Background(), opts...)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	for len(data) > 0 {
		n := min(step, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return castore.Digest{}, err
		}
		data = data[n:]
	}
	return w.Close()
}

// RunBlobService runs the suite against fresh services from newService.
func RunBlobService(t *testing.T, newService func(t *testing.T) castore.BlobService) {
	ctx := context.Background()
	t.Run("vectors", func(t *testing.T) {
		s := newService(t)
		for _, tc := range []struct {
			data []byte
			want castore.Digest
		}{
			{nil, mustHex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")},
			{HelloWorldBlob, mustHex("5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c")},
			{[]byte{0, 1}, mustHex("7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63")},
			{BlobB, mustHex("a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2")},
		} {
			if ok, err := s.Has(ctx, tc.want); err != nil || ok {
				t.Fatalf("Has(%s) before put = %v, %v", tc.want, ok, err)
			}
			got, err := PutBlob(t, s, tc.data, 7919)
			if err != nil || got != tc.want {
				t.Fatalf("put %d bytes = %s, %v; want %s", len(tc.data), got, err, tc.want)
			}
			if ok, err := s.Has(ctx, tc.want); err != nil || !ok {
				t.Fatalf("Has(%s) after put = %v, %v", tc.want, ok, err)
			}
			r, err := s.Open(ctx, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(back, tc.data) {
				t.Fatalf("read back %d bytes (err %v), want %d", len(back), err, len(tc.data))
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		s := newService(t)
		d := castore.HashBlob([]byte("never stored"))
		if _, err := s.Open(ctx, d); !errors.Is(err, castore.ErrNotFound) {
			t.Fatalf("Open missing = %v, want ErrNotFound", err)
		}
		if _, err := s.Chunks(ctx, d); !errors.Is(err, castore.ErrNotFound) {
			t.Fatalf("Chunks missing = %v, want ErrNotFound", err)
		}
	})
	t.Run("expected digest mismatch leaves nothing", func(t *testing.T) {
		s := newService(t)
		claimed := castore.HashBlob([]byte("something else"))
		data := make([]byte, 3<<20)
		rand.New(rand.NewSource(1)).Read(data)
		if _, err := PutBlob(t, s, data, 1<<16, castore.WithExpectedDigest(claimed)); err == nil {
			t.Fatal("put with wrong expected digest succeeded")
		}
		for _, d := range []castore.Digest{claimed, castore.HashBlob(data)} {
			if ok, err := s.Has(ctx, d); err != nil || ok {
				t.Fatalf("Has(%s) after refused put = %v, %v", d, ok, err)
			}
		}
		got, err := PutBlob(t, s, data, 1<<16, castore.WithExpectedDigest(castore.HashBlob(data)))
		if err != nil || got != castore.HashBlob(data) {
			t.Fatalf("put with right expected digest = %s, %v", got, err)
		}
	})
	t.Run("aborted put leaves nothing", func(t *testing.T) {
		s := newService(t)
		data := make([]byte, 2<<20)
		rand.New(rand.NewSource(2)).Read(data)
		w, err := s.Put(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Abort()
		if ok, _ := s.Has(ctx, castore.HashBlob(data)); ok {
			t.Fatal("aborted blob is visible")
		}
	})
	t.Run("chunked random access", func(t *testing.T) {
		s := newService(t)
		data := make([]byte, 5<<20+123)
		rand.New(rand.NewSource(3)).Read(data)
		d, err := PutBlob(t, s, data, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := s.Chunks(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		var total uint64
		for _, c := range chunks {
			total += c.Size
		}
		if len(chunks) > 0 && total != uint64(len(data)) {
			t.Fatalf("chunk sizes add to %d, blob has %d", total, len(data))
		}
		r, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Size() != int64(len(data)) {
			t.Fatalf("Size() = %d, want %d", r.Size(), len(data))
		}
		rng := rand.New(rand.NewSource(4))
		for i := 0; i < 50; i++ {
			off := rng.Int63n(int64(len(data)))
			n := rng.Intn(3 << 20)
			buf := make([]byte, n)
			m, err := r.ReadAt(buf, off)
			want := data[off:min(int(off)+n, len(data))]
			if m != len(want) || !bytes.Equal(buf[:m], want) || (m < n && err != io.EOF) || (m == n && err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d bytes", off, n, m, err, len(want))
			}
		}
		if _, err := r.Seek(int64(len(data)-10), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		tail, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(tail, data[len(data)-10:]) {
			t.Fatalf("read after seek = %x, %v", tail, err)
		}
		for _, c := range chunks {
			cr, err := s.Open(ctx, c.Digest)
			if err != nil {
				t.Fatalf("chunks must be readable as blobs: %v", err)
			}
			cr.Close()
		}
	})
	t.Run("concurrent puts of the same blob", func(t *testing.T) {
		s := newService(t)
		data := make([]byte, 3<<20)
		rand.New(rand.NewSource(5)).Read(data)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(step int) {
				defer wg.Done()
				d, err := PutBlob(t, s, data, step)
				if err == nil && d != castore.HashBlob(data) {
					err = errors.New("wrong digest")
				}
				errs <- err
			}(4096 + i*1000)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		r, err := s.Open(ctx, castore.HashBlob(data))
		if err != nil {
			t.Fatal(err)
		}
		back, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(back, data) {
			t.Fatal("blob corrupted by concurrent puts")
		}
	})
}
