package blobstore

import (
	"context"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/touchlog"
)

func (m *memBackend) setTouchLog(l *touchlog.Log) { m.touch = l }

// sweep deletes dead chunks and chunk lists and punches their bytes out of
// the memory files. All in one step: nothing here is durable, so there is
// no crash to be safe against, and the maps are small next to the bytes.
func (m *memBackend) sweep(_ context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	protected := func(d castore.Digest) bool { return m.touch.Since(d, req.Since) }
	var freed []memExtent
	err := m.touch.Exclusive(func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		live := map[castore.Digest]bool{}
		for d, cs := range m.manifests {
			if l := req.Live(d); l || protected(d) {
				if !l {
					rep.Kept++
				}
				for _, c := range cs {
					live[c.Digest] = true
				}
				continue
			}
			rep.Blobs++
			if !req.DryRun {
				delete(m.manifests, d)
			}
		}
		for d, e := range m.chunks {
			if live[d] || req.Live(d) || protected(d) {
				if !live[d] && !req.Live(d) {
					rep.Kept++
				}
				rep.LiveBytes += e.size
				continue
			}
			rep.Chunks++
			rep.BytesFreed += e.size
			if !req.DryRun {
				delete(m.chunks, d)
				freed = append(freed, e)
			}
		}
		return nil
	})
	for _, e := range freed {
		e.release()
	}
	return rep, err
}
