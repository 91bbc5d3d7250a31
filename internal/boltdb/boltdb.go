// Package boltdb shares one bbolt database per file within a process: the
// directory and path-info services of the embedded store live in the same
// file, and bbolt's file lock would otherwise make the second open wait.
package boltdb

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

const (
	metaBucket    = "meta"
	formatKey     = "format"
	formatVersion = "tvix-go bbolt v2"
	// formatV1 files lack the path infos' referrers index, which opening
	// them builds (store/pathinfo); v2 keeps tvix binaries that would not
	// maintain it from writing to a file that has it.
	formatV1 = "tvix-go bbolt v1"
)

// DB is a reference-counted handle; Close releases this reference only.
type DB struct {
	*bolt.DB
	path string
	once sync.Once
}

type shared struct {
	db   *bolt.DB
	refs int
}

var (
	mu   sync.Mutex
	open = map[string]*shared{}
)

// Open opens (creating if needed) the database at path, checks its format
// version and creates the given buckets.
func Open(path string, buckets ...string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open bbolt %s: %w", path, err)
	}
	mu.Lock()
	defer mu.Unlock()
	s, ok := open[abs]
	if !ok {
		db, err := bolt.Open(abs, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open bbolt %s: store in use by another process; point this command at the daemon with --blob-service-addr/--directory-service-addr/--path-info-service-addr grpc+unix:///path/to/tvix.sock", abs)
		}
		if err != nil {
			return nil, fmt.Errorf("open bbolt %s: %w", abs, err)
		}
		if err := checkFormat(db); err != nil {
			db.Close()
			return nil, fmt.Errorf("open bbolt %s: %w", abs, err)
		}
		s = &shared{db: db}
		open[abs] = s
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		if s.refs == 0 {
			s.db.Close()
			delete(open, abs)
		}
		return nil, fmt.Errorf("open bbolt %s: %w", abs, err)
	}
	s.refs++
	return &DB{DB: s.db, path: abs}, nil
}

func checkFormat(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(metaBucket))
		if err != nil {
			return err
		}
		switch v := b.Get([]byte(formatKey)); {
		case v == nil, string(v) == formatV1:
			return b.Put([]byte(formatKey), []byte(formatVersion))
		case string(v) != formatVersion:
			return fmt.Errorf("unknown store format %q (this tvix knows %q)", v, formatVersion)
		}
		return nil
	})
}

// Close drops this reference; the file closes with the last one.
func (d *DB) Close() error {
	var err error
	d.once.Do(func() {
		mu.Lock()
		defer mu.Unlock()
		s := open[d.path]
		if s == nil {
			return
		}
		s.refs--
		if s.refs == 0 {
			delete(open, d.path)
			err = s.db.Close()
		}
	})
	return err
}
