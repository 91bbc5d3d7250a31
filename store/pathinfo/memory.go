package pathinfo

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// Memory keeps PathInfos in a map.
type Memory struct {
	mu    sync.RWMutex
	infos map[[storepath.DigestSize]byte]*storev1.PathInfo
	files memoryNARFiles
	// access: last use of each path (AccessRecorder).
	access map[[storepath.DigestSize]byte]int64
}

func NewMemory() *Memory {
	return &Memory{infos: make(map[[storepath.DigestSize]byte]*storev1.PathInfo)}
}

func (m *Memory) Get(_ context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	m.mu.RLock()
	info, ok := m.infos[digest]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get path info %x: %w", digest, ErrNotFound)
	}
	return proto.Clone(info).(*storev1.PathInfo), nil
}

func (m *Memory) Put(_ context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	sp, err := Validate(info)
	if err != nil {
		return nil, fmt.Errorf("put path info: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	stored := proto.Clone(info).(*storev1.PathInfo)
	if old, ok := m.infos[sp.Digest]; ok {
		if stored, err = Merge(old, info); err != nil {
			return nil, fmt.Errorf("put path info: %w", err)
		}
	}
	m.infos[sp.Digest] = stored
	return proto.Clone(stored).(*storev1.PathInfo), nil
}

func (m *Memory) List(context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) {
		m.mu.RLock()
		keys := make([][storepath.DigestSize]byte, 0, len(m.infos))
		for k := range m.infos {
			keys = append(keys, k)
		}
		m.mu.RUnlock()
		sort.Slice(keys, func(i, j int) bool { return string(keys[i][:]) < string(keys[j][:]) })
		for _, k := range keys {
			m.mu.RLock()
			info, ok := m.infos[k]
			m.mu.RUnlock()
			if ok && !yield(proto.Clone(info).(*storev1.PathInfo), nil) {
				return
			}
		}
	}
}

func (m *Memory) Close() error { return nil }
