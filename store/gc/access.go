package gc

import (
	"context"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// accessResolution is how fine access times are kept: a path read again
// within it is not recorded again, so a busy cache writes each path's
// time at most once per interval, not once per read.
const accessResolution = time.Minute

// AccessLog records when paths were last used, for --max-size evictions.
// Uses collect in memory and reach the path-info service in batches
// (Flush, or Run's interval); a crash loses at most one interval of them,
// which only makes those paths look older.
type AccessLog struct {
	rec pathinfo.AccessRecorder // nil: kept in memory only

	mu       sync.Mutex
	pending  map[[storepath.DigestSize]byte]int64
	recorded map[[storepath.DigestSize]byte]int64 // last time written, this process
	now      func() time.Time
}

// NewAccessLog records into svc where it keeps access times
// (pathinfo.AccessRecorder), in memory otherwise.
func NewAccessLog(svc pathinfo.Service) *AccessLog {
	rec, _ := castore.As[pathinfo.AccessRecorder](svc)
	return &AccessLog{rec: rec, pending: map[[storepath.DigestSize]byte]int64{}, recorded: map[[storepath.DigestSize]byte]int64{}, now: time.Now}
}

// Touch records that a path was used now.
func (a *AccessLog) Touch(d [storepath.DigestSize]byte) {
	now := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.recorded[d]; ok && now-last < int64(accessResolution/time.Second) {
		return
	}
	a.recorded[d] = now
	a.pending[d] = now
}

// Flush writes the pending times.
func (a *AccessLog) Flush(ctx context.Context) error {
	a.mu.Lock()
	batch := a.pending
	a.pending = map[[storepath.DigestSize]byte]int64{}
	a.mu.Unlock()
	if a.rec == nil || len(batch) == 0 {
		if a.rec == nil {
			a.mu.Lock()
			for d, t := range batch {
				a.pending[d] = max(a.pending[d], t)
			}
			a.mu.Unlock()
		}
		return nil
	}
	if err := a.rec.RecordAccess(ctx, batch); err != nil {
		a.mu.Lock()
		for d, t := range batch {
			a.pending[d] = max(a.pending[d], t)
		}
		a.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (a *AccessLog) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.Flush(context.WithoutCancel(ctx)); err != nil {
				slog.Warn("record access times", "err", err)
			}
			return
		case <-t.C:
			if err := a.Flush(ctx); err != nil {
				slog.Warn("record access times", "err", err)
			}
		}
	}
}

// Times returns every path's last use (unix seconds), what is pending
// included.
func (a *AccessLog) Times(ctx context.Context) (map[[storepath.DigestSize]byte]int64, error) {
	if err := a.Flush(ctx); err != nil {
		return nil, err
	}
	out := map[[storepath.DigestSize]byte]int64{}
	if a.rec != nil {
		var err error
		if out, err = a.rec.AccessTimes(ctx); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[[storepath.DigestSize]byte]int64{}
		}
	}
	a.mu.Lock()
	for d, t := range a.pending {
		out[d] = max(out[d], t)
	}
	a.mu.Unlock()
	return out, nil
}

// RecordAccess wraps a path-info service so every path looked up or put
// through it counts as used.
func RecordAccess(svc pathinfo.Service, a *AccessLog) pathinfo.Service {
	return &recordingService{Service: svc, a: a}
}

type recordingService struct {
	pathinfo.Service
	a *AccessLog
}

func (r *recordingService) Get(ctx context.Context, d [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	info, err := r.Service.Get(ctx, d)
	if err == nil {
		r.a.Touch(d)
	}
	return info, err
}

func (r *recordingService) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	out, err := r.Service.Put(ctx, info)
	if err == nil {
		if sp, verr := pathinfo.Validate(out); verr == nil {
			r.a.Touch(sp.Digest)
		}
	}
	return out, err
}

func (r *recordingService) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return r.Service.List(ctx)
}

// Unwrap keeps the wrapped service's abilities reachable (castore.As).
func (r *recordingService) Unwrap() any { return r.Service }
