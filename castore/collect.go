package castore

import (
	"context"
	"time"
)

// Collectable is implemented by stores whose unreachable objects can be
// deleted (garbage collection, see store/gc). The caller marks what is
// reachable; the store sweeps the rest, but keeps whatever was written,
// found present (a Has that let an upload skip it, a dedup) or opened at
// or after Since: that is an upload or a read still in flight, which the
// marking cannot see. Since is the collection's epoch. A store shared by
// several processes (an object store written by several daemons) keeps
// that promise for all of its writers, e.g. by object times, not only for
// those of this process.
type Collectable interface {
	Sweep(ctx context.Context, req SweepRequest) (SweepReport, error)
}

// SweepRequest says what a sweep may delete.
type SweepRequest struct {
	// Live reports objects reachable from the roots: blob digests for a
	// blob service, directory digests for a directory service.
	Live func(Digest) bool
	// Since is the epoch: objects touched at or after it stay.
	Since time.Time
	// DryRun counts what would go and deletes nothing.
	DryRun bool
	// CompactBelow rewrites storage files (packs) whose live fraction falls
	// below it, so the bytes of dead objects inside them are freed too;
	// 0 never does.
	CompactBelow float64
	// Progress, if set, is called now and then with the work done so far.
	Progress func(SweepProgress)
}

// SweepProgress is what a sweep has done so far.
type SweepProgress struct {
	Phase   string // "sweep", "compact"
	Objects int64  // examined
	Bytes   int64  // freed (or moved, while compacting)
}

// SweepReport is what a sweep deleted (or, dry, would delete).
type SweepReport struct {
	Blobs       int64 // multi-chunk blobs whose chunk lists went
	Chunks      int64 // chunks (single-chunk blobs included)
	Directories int64
	// Kept counts dead objects spared because they were touched at or
	// after Since.
	Kept int64
	// Files removed and compacted (pack files), bytes copied by compaction.
	FilesRemoved, FilesCompacted int64
	BytesMoved                   int64
	// BytesFreed is what the store's files shrank by.
	BytesFreed int64
	// LiveBytes is what the store holds afterwards, where it knows.
	LiveBytes int64
}

// Add sums two reports (of a blob and a directory sweep).
func (r SweepReport) Add(o SweepReport) SweepReport {
	return SweepReport{
		Blobs: r.Blobs + o.Blobs, Chunks: r.Chunks + o.Chunks, Directories: r.Directories + o.Directories,
		Kept: r.Kept + o.Kept, FilesRemoved: r.FilesRemoved + o.FilesRemoved, FilesCompacted: r.FilesCompacted + o.FilesCompacted,
		BytesMoved: r.BytesMoved + o.BytesMoved, BytesFreed: r.BytesFreed + o.BytesFreed, LiveBytes: r.LiveBytes + o.LiveBytes,
	}
}
