package blobstore

// InProcess: every backend keeps its bytes in this process's memory or files.
func (s *Store) InProcess() bool { return true }
