package boltdb

import bolt "go.etcd.io/bbolt"

// DeleteMatching deletes the keys of bk whose entries match, in the
// caller's transaction; bbolt cursors must not delete while they iterate,
// so the keys are collected first.
func DeleteMatching(bk *bolt.Bucket, match func(k, v []byte) bool) error {
	var keys [][]byte
	if err := bk.ForEach(func(k, v []byte) error {
		if match(k, v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
