package pgstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/scaletest"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
	"github.com/tvix-go/tvix/store/storev1"
)

func digestOf(t *testing.T, base string) [storepath.DigestSize]byte {
	sp, err := storepath.FromBasename(base)
	if err != nil {
		t.Fatal(err)
	}
	return sp.Digest
}

// Delete spares what a path that stays refers to, and removes the rest.
func TestDeleteKeepsClosures(t *testing.T) {
	ctx := context.Background()
	s := NewPathInfos(openDB(t, scaletest.PGURL(t)))
	const a, b, c = "00bgd045z0d4icpbc2yyz4gx48ak44la-a", "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "2c5b8vw40dy178xlpddw65q9gf1h2186-c"
	if err := s.PutBatch(ctx, []*storev1.PathInfo{pathinfotest.SampleInfo(t, a), pathinfotest.SampleInfo(t, b, a), pathinfotest.SampleInfo(t, c)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNARFile(ctx, "nar/c.nar", digestOf(t, c)); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Delete(ctx, [][storepath.DigestSize]byte{digestOf(t, a), digestOf(t, c)})
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0] != digestOf(t, c) {
		t.Fatalf("deleted %x, want only c (b refers to a)", gone)
	}
	if _, err := s.GetNARFile(ctx, "nar/c.nar"); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatalf("c's NAR file record outlived it: %v", err)
	}
	if gone, err = s.Delete(ctx, [][storepath.DigestSize]byte{digestOf(t, a), digestOf(t, b)}); err != nil || len(gone) != 2 {
		t.Fatalf("delete a and b: %x %v", gone, err)
	}
	for _, p := range []string{a, b, c} {
		if _, err := s.Get(ctx, digestOf(t, p)); !errors.Is(err, pathinfo.ErrNotFound) {
			t.Fatalf("%s still recorded: %v", p, err)
		}
	}
	// A put after the delete of its reference fails; the closure rule holds.
	if _, err := s.Put(ctx, pathinfotest.SampleInfo(t, b, a)); !errors.Is(err, pathinfo.ErrMissingReference) {
		t.Fatalf("put referring to a deleted path: %v", err)
	}
}

// Sweep spares directories touched since the epoch and every directory
// below them, and takes the rest.
func TestSweepSparesTouchedTrees(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, scaletest.PGURL(t))
	s := NewDirectories(db)
	dirs := chain(5)
	root := putAll(t, s, dirs)
	none := func(castore.Digest) bool { return false }
	rep, err := s.Sweep(ctx, castore.SweepRequest{Live: none, Since: time.Now().Add(-time.Hour)})
	if err != nil || rep.Directories != 0 || rep.Kept != 5 {
		t.Fatalf("sweep of just-put directories: %+v %v", rep, err)
	}
	// Everything but the root is old: the root keeps its tree.
	if _, err := db.pool.Exec(ctx, `UPDATE directories SET touched = now() - interval '2 hours' WHERE digest <> $1`, root.Bytes()); err != nil {
		t.Fatal(err)
	}
	if rep, err = s.Sweep(ctx, castore.SweepRequest{Live: none, Since: time.Now().Add(-time.Hour)}); err != nil || rep.Directories != 0 {
		t.Fatalf("sweep below a touched root: %+v %v", rep, err)
	}
	// Live keeps them whatever their age; then nothing does.
	if _, err := db.pool.Exec(ctx, `UPDATE directories SET touched = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	live := func(d castore.Digest) bool { return true }
	if rep, err = s.Sweep(ctx, castore.SweepRequest{Live: live, Since: time.Now()}); err != nil || rep.Directories != 0 {
		t.Fatalf("sweep of live directories: %+v %v", rep, err)
	}
	if rep, err = s.Sweep(ctx, castore.SweepRequest{Live: none, Since: time.Now(), DryRun: true}); err != nil || rep.Directories != 5 {
		t.Fatalf("dry sweep: %+v %v", rep, err)
	}
	if rep, err = s.Sweep(ctx, castore.SweepRequest{Live: none, Since: time.Now()}); err != nil || rep.Directories != 5 {
		t.Fatalf("sweep of dead directories: %+v %v", rep, err)
	}
	if _, err := s.Get(ctx, root); !errors.Is(err, castore.ErrNotFound) {
		t.Fatalf("root still stored: %v", err)
	}
	// Deduplicating against a stored directory touches it.
	if _, err := s.Put(ctx, dirs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `UPDATE directories SET touched = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, dirs[0]); err != nil {
		t.Fatal(err)
	}
	if rep, err = s.Sweep(ctx, castore.SweepRequest{Live: none, Since: time.Now().Add(-time.Hour)}); err != nil || rep.Directories != 0 || rep.Kept != 1 {
		t.Fatalf("sweep after a dedup touched the directory: %+v %v", rep, err)
	}
}

// Past one batch: a deep tree below a recent root is spared through the
// candidates (the database walks it), an old half-live forest goes in
// several batches, and what the listing holds is the candidate table, not
// this process.
func TestSweepManyBatches(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, scaletest.PGURL(t))
	s := NewDirectories(db)
	deep := putAll(t, s, chain(2*sweepBatch+500))
	if _, err := db.pool.Exec(ctx, `UPDATE directories SET touched = now() - interval '2 hours' WHERE digest <> $1`, deep.Bytes()); err != nil {
		t.Fatal(err)
	}
	none := func(castore.Digest) bool { return false }
	rep, err := s.Sweep(ctx, castore.SweepRequest{Live: none, Since: time.Now().Add(-time.Hour)})
	if err != nil || rep.Directories != 0 || rep.Kept != 2*sweepBatch+500 {
		t.Fatalf("sweep below a recent root %d deep: %+v %v", 2*sweepBatch+500, rep, err)
	}
	// Old and dead but for the lower half, which a live set names.
	if _, err := db.pool.Exec(ctx, `UPDATE directories SET touched = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	live := map[castore.Digest]bool{}
	for _, d := range chain(sweepBatch + 250) {
		live[castore.DirectoryDigest(d)] = true
	}
	rep, err = s.Sweep(ctx, castore.SweepRequest{Live: func(d castore.Digest) bool { return live[d] }, Since: time.Now()})
	if err != nil || rep.Directories != sweepBatch+250 || rep.Kept != 0 {
		t.Fatalf("sweep of %d dead directories: %+v %v", sweepBatch+250, rep, err)
	}
	var left int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM directories`).Scan(&left); err != nil || left != sweepBatch+250 {
		t.Fatalf("%d directories left (%v), want the %d live", left, err, sweepBatch+250)
	}
	for d := range live {
		if _, err := s.Get(ctx, d); err != nil {
			t.Fatalf("live directory %s: %v", d, err)
		}
	}
}

// Referrers are found through the references index: each path that
// refers to the asked one, a self-reference included, and nothing else.
func TestReferrers(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, scaletest.PGURL(t))
	s := NewPathInfos(db)
	const a, b, c, self = "00bgd045z0d4icpbc2yyz4gx48ak44la-a", "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "2c5b8vw40dy178xlpddw65q9gf1h2186-c", "3c5b8vw40dy178xlpddw65q9gf1h2186-self"
	if err := s.PutBatch(ctx, []*storev1.PathInfo{pathinfotest.SampleInfo(t, a), pathinfotest.SampleInfo(t, b, a),
		pathinfotest.SampleInfo(t, c, a, b), pathinfotest.SampleInfo(t, self, self, a)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		of   string
		want []string
	}{{a, []string{b, c, self}}, {b, []string{c}}, {c, nil}, {self, []string{self}}} {
		infos, err := s.Referrers(ctx, digestOf(t, tc.of))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, info := range infos {
			got = append(got, string(castore.NodeName(info.GetNode())))
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("referrers of %s: %v, want %v", tc.of, got, tc.want)
		}
	}
	var indexed bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'path_infos' AND indexname = 'path_infos_refs')`).Scan(&indexed); err != nil || !indexed {
		t.Fatalf("no index on path_infos.refs: %v", err)
	}
}
