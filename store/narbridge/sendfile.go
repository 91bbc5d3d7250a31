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

// send writes what is left of lr (a blob reader limited to its file's
// size, as nar.Writer passes it) through sendfile where it can, and
// returns how much it sent; the caller copies the rest. The blob reader's
// position follows what was sent, so a copy after it starts in the right
// place. While one range is sent the next is verified, so hashing and
// sending overlap (on two cores, one connection is served at the speed of
// the slower of the two instead of their sum).
func (s *fileSender) send(lr *io.LimitedReader) (int64, error) {
	fr, ok := lr.R.(castore.FileRanger)
	sk, ok2 := lr.R.(io.Seeker)
	if s.disabled || s.to == nil || !ok || !ok2 || lr.N < minSendfile {
		return 0, nil
	}
	pos, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, nil
	}
	end := pos + lr.N
	var sent int64
	cur := fileRange(fr, pos, end)
	for cur.n > 0 {
		var ahead chan fileRangeResult
		if next := pos + int64(cur.n); end-next >= minSendfile {
			ahead = make(chan fileRangeResult, 1)
			go func() { ahead <- fileRange(fr, next, end) }()
		}
		m, err := s.sendRange(cur)
		sent += m
		pos += m
		lr.N -= m
		if _, serr := sk.Seek(pos, io.SeekStart); serr != nil && err == nil {
			err = serr
		}
		if ahead != nil {
			// Wait for it even when giving up: the reader must not be
			// used once this returns.
			cur = <-ahead
		} else {
			cur = fileRangeResult{}
		}
		if err != nil || s.disabled {
			return sent, err
		}
	}
	return sent, nil
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
