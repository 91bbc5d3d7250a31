package narbridge

import (
	"fmt"
	"io"
	"os"

	"github.com/tvix-go/tvix/castore"
)

// fileSender hands the file contents of a NAR being served to the kernel
// (sendfile) when the blob's bytes lie in local files, as a static file
// server does, instead of copying them through a buffer. The blob reader
// verifies each chunk before it names its file range (castore.FileRanger
// of a verifying blob store), so what the kernel sends was verified; only
// a byte changed on disk between that check and the send would escape it,
// the same window a FUSE splice has.
//
// sendfile reads at the file's own offset, and a pack file is shared by
// every reader; so each file is opened again (a private offset) once per
// response, through /proc/self/fd, which works on a file already removed.
type fileSender struct {
	to      io.ReaderFrom // the connection's own ReadFrom (sendfile)
	private map[*os.File]*os.File
	// disabled after a failure to reopen: the copy path is always correct.
	disabled bool
}

// minSendfile is the smallest range worth the syscalls: below it the
// bytes are copied with the NAR's framing, in one write.
const minSendfile = 64 << 10

func (s *fileSender) close() {
	for _, f := range s.private {
		f.Close()
	}
	s.private = nil
}

func (s *fileSender) reopen(f *os.File) (*os.File, error) {
	if p, ok := s.private[f]; ok {
		return p, nil
	}
	p, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return nil, err
	}
	if s.private == nil {
		s.private = map[*os.File]*os.File{}
	}
	s.private[f] = p
	return p, nil
}

// memRanger is a blob reader holding verified bytes in memory (a blob
// store's chunk cache): they are written as they are, without a copy
// through a buffer and without being hashed again.
type memRanger interface {
	MemRange(off int64, n int) []byte
}

// send writes what is left of lr (a blob reader limited to its file's
// size, as nar.Writer passes it) from memory or through sendfile where it
// can, to out, and returns how much it sent; the caller copies the rest.
// The blob reader's position follows what was sent, so a copy after it
// starts in the right place. While one range is sent the next is
// verified, so hashing and sending overlap (on two cores, one connection
// is served at the speed of the slower of the two instead of their sum).
func (s *fileSender) send(lr *io.LimitedReader, out io.Writer) (int64, error) {
	sk, ok := lr.R.(io.Seeker)
	if !ok || lr.N < minSendfile {
		return 0, nil
	}
	fr, _ := lr.R.(castore.FileRanger)
	if s.disabled || s.to == nil {
		fr = nil
	}
	mr, _ := lr.R.(memRanger)
	if fr == nil && mr == nil {
		return 0, nil
	}
	pos, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, nil
	}
	end := pos + lr.N
	var sent int64
	var ahead chan fileRangeResult // the file range from aheadAt on
	var aheadAt int64
	for pos < end {
		mem := memRange(mr, pos, end)
		var cur fileRangeResult
		if len(mem) == 0 {
			found := false
			if ahead != nil {
				// Past a stretch sent from memory, it may be of a place passed.
				if r := <-ahead; aheadAt == pos {
					cur, found = r, true
				}
				ahead = nil
			}
			if !found && fr != nil {
				cur = fileRange(fr, pos, end)
			}
			if cur.n == 0 {
				// The range may have ended at a chunk just read into the cache.
				if mem = memRange(mr, pos, end); len(mem) == 0 {
					break
				}
			}
		}
		next := pos + int64(len(mem)) + int64(cur.n)
		if fr != nil && ahead == nil && end-next >= minSendfile {
			ahead, aheadAt = make(chan fileRangeResult, 1), next
			go func() { ahead <- fileRange(fr, next, end) }()
		}
		var m int64
		if len(mem) > 0 {
			var k int
			k, err = out.Write(mem)
			m = int64(k)
		} else {
			m, err = s.sendRange(cur)
		}
		sent += m
		pos += m
		lr.N -= m
		if _, serr := sk.Seek(pos, io.SeekStart); serr != nil && err == nil {
			err = serr
		}
		if err != nil || s.disabled && len(mem) == 0 {
			break
		}
	}
	if ahead != nil {
		// Wait for it even when giving up: the reader must not be used
		// once this returns.
		<-ahead
	}
	return sent, err
}

// memRange is what mr holds in memory of [pos, end), or nil.
func memRange(mr memRanger, pos, end int64) []byte {
	if mr == nil {
		return nil
	}
	return mr.MemRange(pos, int(min(end-pos, sendfileRange)))
}

type fileRangeResult struct {
	f   *os.File
	off int64
	n   int
}

// fileRange asks for the verified file range of [pos, end), bounded: its
// chunks are all verified before it is named, so a corrupt chunk far
// ahead does not hold back the bytes before it.
func fileRange(fr castore.FileRanger, pos, end int64) fileRangeResult {
	f, off, n := fr.FileRange(pos, int(min(end-pos, sendfileRange)))
	if f == nil || n < minSendfile && int64(n) < end-pos {
		return fileRangeResult{}
	}
	return fileRangeResult{f, off, n}
}

// sendRange sends one file range from a private descriptor.
func (s *fileSender) sendRange(r fileRangeResult) (int64, error) {
	p, err := s.reopen(r.f)
	if err == nil {
		_, err = p.Seek(r.off, io.SeekStart)
	}
	if err != nil {
		// Not an error of the response: the copy path sends the rest.
		s.disabled = true
		return 0, nil
	}
	m, err := s.to.ReadFrom(&io.LimitedReader{R: p, N: int64(r.n)})
	if err == nil && m < int64(r.n) {
		err = fmt.Errorf("send file range: %d of %d bytes: %w", m, r.n, io.ErrUnexpectedEOF)
	}
	return m, err
}

// sendfileRange bounds one verified range handed to sendfile.
const sendfileRange = 8 << 20
