package glue

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/storev1"
)

// CastoreStore persists what evaluation adds into castore with a PathInfo
// each, so sources and .drv files show up in `tvix mount` and nar-bridge.
type CastoreStore struct {
	importer.Store
}

// AddText stores a text file (a .drv, a toFile result), unless a
// WriteBehind knows it already. Its NAR hash is computed from the bytes in hand rather than read
// back; with a WriteBehind path info service the blob's durability is left
// to the batch (deferred sync), so a .drv costs no sync of its own.
func (s CastoreStore) AddText(ctx context.Context, name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, error) {
	sp, err := TextPath(name, contents, refs)
	if err != nil {
		return sp, err
	}
	var opts []castore.PutOption
	if wb, ok := s.PathInfo.(*WriteBehind); ok {
		if known, err := wb.known(ctx, sp.Digest); err != nil {
			return sp, fmt.Errorf("add %s: %w", sp, err)
		} else if known {
			return sp, nil
		}
		opts = append(opts, castore.WithDeferredSync())
	}
	w, err := s.Blobs.Put(ctx, opts...)
	if err != nil {
		return sp, fmt.Errorf("add %s: %w", sp, err)
	}
	if _, err := w.Write(contents); err != nil {
		w.Abort()
		return sp, fmt.Errorf("add %s: %w", sp, err)
	}
	d, err := w.Close()
	if err != nil {
		return sp, fmt.Errorf("add %s: %w", sp, err)
	}
	narSize, narSHA := fileNAR(contents)
	sum := sha256.Sum256(contents)
	info := &storev1.PathInfo{
		Node: &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
			Name: []byte(sp.Basename()), Digest: d.Bytes(), Size: uint64(len(contents))}}},
		Narinfo: &storev1.NARInfo{NarSize: narSize, NarSha256: narSHA[:],
			Ca: &storev1.NARInfo_CA{Type: storev1.NARInfo_CA_TEXT_SHA256, Digest: sum[:]}},
	}
	for _, r := range refs {
		info.References = append(info.References, append([]byte(nil), r.Digest[:]...))
		info.Narinfo.ReferenceNames = append(info.Narinfo.ReferenceNames, r.Basename())
	}
	if _, err := s.PathInfo.Put(ctx, info); err != nil {
		return sp, fmt.Errorf("add %s: %w", sp, err)
	}
	return sp, nil
}

// fileNAR is the size and sha256 of the NAR of a regular, non-executable
// file with these contents, written out directly: nar.Writer's buffer
// would be most of what instantiating a .drv allocates.
func fileNAR(contents []byte) (uint64, [32]byte) {
	h := sha256.New()
	var n uint64
	var lenBuf [8]byte
	var zeros [8]byte
	str := func(b []byte) {
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(b)))
		h.Write(lenBuf[:])
		h.Write(b)
		pad := (8 - len(b)%8) % 8
		h.Write(zeros[:pad])
		n += 8 + uint64(len(b)) + uint64(pad)
	}
	for _, t := range []string{"nix-archive-1", "(", "type", "regular", "contents"} {
		str([]byte(t))
	}
	str(contents)
	str([]byte(")"))
	var sum [32]byte
	h.Sum(sum[:0])
	return n, sum
}

func (s CastoreStore) AddPath(ctx context.Context, name, src string, recursive bool, filter Filter) (storepath.StorePath, error) {
	if !recursive {
		sp, _, err := s.Store.AddFixed(ctx, src, name, false, nixhash.SHA256)
		return sp, err
	}
	opts := fstree.ImportOptions{}
	if filter != nil {
		// The filter is evaluator code: keep calls on the walking goroutine.
		opts.Filter = func(p, typ string) (bool, error) { return filter(p, typ) }
	}
	node, err := fstree.Import(ctx, filepath.Clean(src), s.Blobs, s.Dirs, opts)
	if err != nil {
		return storepath.StorePath{}, fmt.Errorf("add %s to the store: %w", src, err)
	}
	sp, _, err := s.Store.AddNode(ctx, node, name)
	return sp, err
}
