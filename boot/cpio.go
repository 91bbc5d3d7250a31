package boot

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks as
// initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
type cpioWriter struct {
	w   *bufio.Writer
	n   int64 // bytes written, for padding
	ino uint32
}

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriterSize(w, 1<<16)} }

// cpio mode bits.
const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioChar    = 0o020000
)

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) error {
	if strings.ContainsRune(name, 0) || name == "" {
		return fmt.Errorf("cpio entry name %q is invalid", name)
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio entry %s: size %d does not fit the newc format", name, size)
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if err := c.write([]byte(h)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) dir(name string, perm uint32) error {
	return c.header(name, cpioDir|perm, 0, 0, 0)
}

func (c *cpioWriter) charDev(name string, perm, major, minor uint32) error {
	return c.header(name, cpioChar|perm, 0, major, minor)
}

func (c *cpioWriter) symlink(name, target string) error {
	if err := c.header(name, cpioSymlink|0o777, int64(len(target)), 0, 0); err != nil {
		return err
	}
	if err := c.write([]byte(target)); err != nil {
		return err
	}
	return c.pad()
}

// file copies exactly size bytes from r.
func (c *cpioWriter) file(name string, perm uint32, size int64, r io.Reader) error {
	if err := c.header(name, cpioFile|perm, size, 0, 0); err != nil {
		return err
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	c.n += n
	if err != nil {
		return fmt.Errorf("cpio entry %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("cpio entry %s: got %d bytes, want %d", name, n, size)
	}
	return c.pad()
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	if err := c.header("TRAILER!!!", 0, 0, 0, 0); err != nil {
		return err
	}
	return c.w.Flush()
}
