// Package blobstore is the castore.BlobService that stores the bytes
// itself (the gRPC client, by contrast, asks another one). A blob is cut
// into content-defined chunks (castore/chunker); each chunk is stored once
// under its own BLAKE3 digest, and a blob of more than one chunk gets a
// manifest, its chunk list, laid out as Tvix's object store lays it out
// (a serialized StatBlobResponse). A single-chunk blob has no manifest: its
// chunk is the blob, so every chunk can be read as a blob, as Tvix's
// protocol wants.
//
// Store does what is the same for every backend. Its writer hashes and
// cuts the stream, staging each chunk in a backend transaction as soon as
// the chunk's end is known, so a put holds at most two maximum chunks in
// memory whatever the blob's size; it commits only once Close has checked
// the whole digest (against the expected one, if given), the manifest
// last, so nothing of a refused or aborted put becomes visible. Its
// readers open only the chunks a read covers (castore/chunkedread) and,
// where a backend keeps chunks in local files, name file ranges for the
// kernel to splice (castore.FileRanger) or a whole file for FUSE
// passthrough (castore.BackingFiler). Every chunk read is checked against
// its digest first (verify.go); a server of many readers can keep the
// chunks so checked in a bounded cache in memory (SetChunkCache), whose
// bytes its readers hand out as they are (MemRange) instead of reading and
// hashing them again.
//
// The backends:
//   - NewMemory keeps chunks in anonymous memory files (memfd), off the Go
//     heap, until Close.
//   - NewPack (pack+file://, tvix's default) appends chunks, unframed,
//     to a few large pack files and indexes them in a bbolt file, so a
//     blob's chunks are one byte range of one pack.
//   - NewFile (objectstore+file://) is Tvix's object-store layout: a file
//     per chunk and per manifest in a sharded directory tree.
//   - NewObjectStore keeps the same layout (ObjectKey) in a remote
//     ObjectStorage, an S3 bucket (castore/s3blob), chunks zstd-compressed
//     as Tvix stores them there.
//
// Durability: on disk, Close of a put returns once the blob is durable,
// and concurrent puts share their flushes (group commit). The
// pack store lets a writer defer that (castore.WithDeferredSync): Close
// returns once the blob is readable in this process, and Sync makes every
// blob closed so far durable. Until then Has answers false for such a
// blob, so a caller that skips an upload because the blob "is there" never
// names, durably, a blob a crash could still take away. A crash leaves
// nothing visible that was not durable: the object store renames complete
// files into place, and the pack store indexes a chunk only after its pack
// was flushed, never one whose flush failed.
package blobstore
