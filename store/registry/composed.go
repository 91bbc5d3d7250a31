package registry

import (
	"container/list"
	"context"
	"fmt"
	"iter"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// The path-info layers a composition file can add (see composition.go).

// lruPathInfos keeps the capacity path infos used last, in memory: the
// near side of a cache in front of a far database or daemon.
type lruPathInfos struct {
	mu       sync.Mutex
	capacity int
	order    *list.List // of [storepath.DigestSize]byte, most recent first
	entries  map[[storepath.DigestSize]byte]*lruEntry
}

type lruEntry struct {
	info *storev1.PathInfo
	el   *list.Element
}

func newLRUPathInfos(capacity int) *lruPathInfos {
	return &lruPathInfos{capacity: capacity, order: list.New(), entries: map[[storepath.DigestSize]byte]*lruEntry{}}
}

func (l *lruPathInfos) Get(_ context.Context, d [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[d]
	if !ok {
		return nil, fmt.Errorf("get path info %x: %w", d, pathinfo.ErrNotFound)
	}
	l.order.MoveToFront(e.el)
	return proto.Clone(e.info).(*storev1.PathInfo), nil
}

func (l *lruPathInfos) Put(_ context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	sp, err := pathinfo.Validate(info)
	if err != nil {
		return nil, fmt.Errorf("put path info: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	stored := proto.Clone(info).(*storev1.PathInfo)
	if e, ok := l.entries[sp.Digest]; ok {
		if stored, err = pathinfo.Merge(e.info, info); err != nil {
			return nil, fmt.Errorf("put path info: %w", err)
		}
		e.info = stored
		l.order.MoveToFront(e.el)
		return proto.Clone(stored).(*storev1.PathInfo), nil
	}
	l.entries[sp.Digest] = &lruEntry{info: stored, el: l.order.PushFront(sp.Digest)}
	for l.order.Len() > l.capacity {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.entries, last.Value.([storepath.DigestSize]byte))
	}
	return proto.Clone(stored).(*storev1.PathInfo), nil
}

// List yields what the cache holds now, most recently used first.
func (l *lruPathInfos) List(context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) {
		l.mu.Lock()
		infos := make([]*storev1.PathInfo, 0, l.order.Len())
		for el := l.order.Front(); el != nil; el = el.Next() {
			infos = append(infos, proto.Clone(l.entries[el.Value.([storepath.DigestSize]byte)].info).(*storev1.PathInfo))
		}
		l.mu.Unlock()
		for _, info := range infos {
			if !yield(info, nil) {
				return
			}
		}
	}
}

func (l *lruPathInfos) Close() error    { return nil }
func (l *lruPathInfos) InProcess() bool { return true }

// signingPathInfos signs every path info put through it with key (as
// Nix's secret-key-files does for what it adds), so what the store holds
// carries this deployment's signature wherever it is served from.
type signingPathInfos struct {
	pathinfo.Service
	key narinfo.SecretKey
}

func (s *signingPathInfos) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	signed, err := s.sign(info)
	if err != nil {
		return nil, err
	}
	return s.Service.Put(ctx, signed)
}

// PutBatch signs each, then stores them as the inner service stores a
// batch: a batch must not get past the signing by reaching the inner
// service's own PutBatch through Unwrap.
func (s *signingPathInfos) PutBatch(ctx context.Context, infos []*storev1.PathInfo) error {
	signed := make([]*storev1.PathInfo, len(infos))
	for i, info := range infos {
		var err error
		if signed[i], err = s.sign(info); err != nil {
			return err
		}
	}
	return pathinfo.PutAll(ctx, s.Service, signed)
}

func (s *signingPathInfos) sign(info *storev1.PathInfo) (*storev1.PathInfo, error) {
	if _, err := pathinfo.Validate(info); err != nil {
		return nil, fmt.Errorf("put path info: %w", err)
	}
	ni, err := pathinfo.ToNarInfo(info)
	if err != nil {
		return nil, fmt.Errorf("sign path info: %w", err)
	}
	sig := s.key.SignFingerprint(ni.Fingerprint())
	signed := proto.Clone(info).(*storev1.PathInfo)
	sigs := signed.Narinfo.Signatures[:0]
	for _, old := range signed.Narinfo.Signatures {
		if old.GetName() != sig.Name {
			sigs = append(sigs, old)
		}
	}
	signed.Narinfo.Signatures = append(sigs, &storev1.NARInfo_Signature{Name: sig.Name, Data: sig.Data})
	return signed, nil
}

// Close leaves the inner service to whoever opened it.
func (s *signingPathInfos) Close() error { return nil }

func (s *signingPathInfos) Unwrap() any { return s.Service }
