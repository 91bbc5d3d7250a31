package pathinfo_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
	"github.com/tvix-go/tvix/store/storev1"
)

// The bbolt store answers referrers from its index: after puts, after a
// delete (which consults the index to spare what a staying path refers
// to), and in a file written before the index existed, which opening
// indexes.
func TestBoltReferrers(t *testing.T) {
	ctx := context.Background()
	const a, b, c, self = "00bgd045z0d4icpbc2yyz4gx48ak44la-a", "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "2c5b8vw40dy178xlpddw65q9gf1h2186-c", "3c5b8vw40dy178xlpddw65q9gf1h2186-self"
	digest := func(base string) [storepath.DigestSize]byte {
		sp, err := storepath.FromBasename(base)
		if err != nil {
			t.Fatal(err)
		}
		return sp.Digest
	}
	check := func(s *pathinfo.Bolt, of string, want ...string) {
		t.Helper()
		infos, err := s.Referrers(ctx, digest(of))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, info := range infos {
			got = append(got, string(castore.NodeName(info.GetNode())))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("referrers of %s: %v, want %v", of, got, want)
		}
	}
	file := filepath.Join(t.TempDir(), "db")
	s, err := pathinfo.NewBolt(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBatch(ctx, []*storev1.PathInfo{pathinfotest.SampleInfo(t, a), pathinfotest.SampleInfo(t, b, a),
		pathinfotest.SampleInfo(t, c, a, b), pathinfotest.SampleInfo(t, self, self, a)}); err != nil {
		t.Fatal(err)
	}
	check(s, a, b, c, self)
	check(s, b, c)
	check(s, c)
	check(s, self, self)
	// b is spared (c refers to it), self goes and leaves the index.
	gone, err := s.Delete(ctx, [][storepath.DigestSize]byte{digest(b), digest(self)})
	if err != nil || len(gone) != 1 || gone[0] != digest(self) {
		t.Fatalf("delete b and self: %x, %v (want only self gone)", gone, err)
	}
	check(s, a, b, c)
	s.Close()

	// A file of the format before the index (v1): opening builds it.
	db, err := bolt.Open(file, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("tvix-go bbolt v1")); err != nil {
			return err
		}
		return tx.DeleteBucket([]byte("referrers"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = pathinfo.NewBolt(file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, a, b, c)
	check(s, b, c)
}
