package blobstore

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// A manifest is encoded as Tvix's object store encodes it (a serialized
// StatBlobResponse), in the pack index and in the object-store layout alike.

func encodeManifest(m []castore.ChunkMeta) []byte {
	resp := &castorev1.StatBlobResponse{}
	for _, c := range m {
		resp.Chunks = append(resp.Chunks, &castorev1.StatBlobResponse_ChunkMeta{Digest: c.Digest.Bytes(), Size: c.Size})
	}
	raw, _ := proto.Marshal(resp)
	return raw
}

func decodeManifest(d castore.Digest, raw []byte) ([]castore.ChunkMeta, bool, error) {
	var resp castorev1.StatBlobResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		return nil, false, fmt.Errorf("manifest of %s: %w", d, err)
	}
	out := make([]castore.ChunkMeta, len(resp.GetChunks()))
	for i, c := range resp.GetChunks() {
		cd, err := castore.DigestFromBytes(c.GetDigest())
		if err != nil {
			return nil, false, fmt.Errorf("manifest of %s: chunk %d: %w", d, i, err)
		}
		out[i] = castore.ChunkMeta{Digest: cd, Size: c.GetSize()}
	}
	return out, true, nil
}
