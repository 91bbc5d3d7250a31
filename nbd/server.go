// Package nbd serves a read-only block device over the Network Block
// Device protocol (fixed newstyle handshake, simple replies), so a VM can
// boot from a disk image stored as a castore blob and fetch only the
// chunks it reads. QEMU's built-in NBD client is the peer we serve.
package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

const (
	magicNBD        = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt        = 0x49484156454f5054 // "IHAVEOPT"
	magicOptReply   = 0x0003e889045565a9
	magicRequest    = 0x25609513
	magicSimpleRepl = 0x67446698

	flagFixedNewstyle = 1 << 0
	flagNoZeroes      = 1 << 1

	optExportName = 1
	optAbort      = 2
	optList       = 3
	optInfo       = 6
	optGo         = 7

	repAck        = 1
	repServer     = 2
	repInfo       = 3
	repErrUnsup   = 1<<31 + 1
	repErrInvalid = 1<<31 + 3
	repErrUnknown = 1<<31 + 6

	infoExport = 0

	tflagHasFlags   = 1 << 0
	tflagReadOnly   = 1 << 1
	tflagSendFlush  = 1 << 2
	tflagMultiConn  = 1 << 8
	transmitFlags   = tflagHasFlags | tflagReadOnly | tflagSendFlush | tflagMultiConn
	cmdRead         = 0
	cmdWrite        = 1
	cmdDisc         = 2
	cmdFlush        = 3
	errPerm         = 1
	errIO           = 5
	errInvalid      = 22
	maxRequestBytes = 32 << 20
)

// Export is one named read-only device.
type Export struct {
	Name string
	Size int64
	Data io.ReaderAt
}

// Server answers NBD clients for a set of exports.
type Server struct {
	exports map[string]Export
	log     *slog.Logger
	wg      sync.WaitGroup
}

// NewServer serves the given exports; a client asking for the empty name
// gets the first one.
func NewServer(log *slog.Logger, exports ...Export) *Server {
	s := &Server{exports: map[string]Export{}, log: log}
	for i, e := range exports {
		s.exports[e.Name] = e
		if i == 0 {
			s.exports[""] = e
		}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Serve accepts connections until ctx ends or the listener fails.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() { <-ctx.Done(); l.Close() }()
	defer s.wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nbd accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			go func() { <-ctx.Done(); c.Close() }()
			if err := s.serveConn(c); err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Warn("nbd connection ended", "err", err)
			}
		}()
	}
}

type conn struct {
	r  *bufio.Reader
	w  *bufio.Writer
	mu sync.Mutex // serialises replies
}

func (c *conn) u16() (uint16, error) {
	var b [2]byte
	_, err := io.ReadFull(c.r, b[:])
	return binary.BigEndian.Uint16(b[:]), err
}

func (c *conn) u32() (uint32, error) {
	var b [4]byte
	_, err := io.ReadFull(c.r, b[:])
	return binary.BigEndian.Uint32(b[:]), err
}

func (c *conn) u64() (uint64, error) {
	var b [8]byte
	_, err := io.ReadFull(c.r, b[:])
	return binary.BigEndian.Uint64(b[:]), err
}

func put16(w io.Writer, v uint16) { binary.Write(w, binary.BigEndian, v) }
func put32(w io.Writer, v uint32) { binary.Write(w, binary.BigEndian, v) }
func put64(w io.Writer, v uint64) { binary.Write(w, binary.BigEndian, v) }

func (c *conn) optReply(opt, typ uint32, data []byte) error {
	put64(c.w, magicOptReply)
	put32(c.w, opt)
	put32(c.w, typ)
	put32(c.w, uint32(len(data)))
	c.w.Write(data)
	return c.w.Flush()
}

func (s *Server) serveConn(nc net.Conn) error {
	c := &conn{r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	put64(c.w, magicNBD)
	put64(c.w, magicOpt)
	put16(c.w, flagFixedNewstyle|flagNoZeroes)
	if err := c.w.Flush(); err != nil {
		return err
	}
	cflags, err := c.u32()
	if err != nil {
		return fmt.Errorf("nbd handshake: %w", err)
	}
	if cflags&flagFixedNewstyle == 0 {
		return fmt.Errorf("nbd handshake: client does not speak fixed newstyle")
	}
	noZeroes := cflags&flagNoZeroes != 0
	exp, err := s.negotiate(c, noZeroes)
	if err != nil || exp == nil {
		return err
	}
	return s.transmit(c, *exp)
}

// negotiate runs option haggling; it returns the export chosen, or nil when
// the client aborted.
func (s *Server) negotiate(c *conn, noZeroes bool) (*Export, error) {
	for {
		magic, err := c.u64()
		if err != nil {
			return nil, fmt.Errorf("nbd options: %w", err)
		}
		if magic != magicOpt {
			return nil, fmt.Errorf("nbd options: bad magic %#x", magic)
		}
		opt, _ := c.u32()
		n, err := c.u32()
		if err != nil {
			return nil, err
		}
		if n > 4096 {
			return nil, fmt.Errorf("nbd options: option %d with %d bytes of data", opt, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.r, data); err != nil {
			return nil, err
		}
		switch opt {
		case optExportName:
			exp, ok := s.exports[string(data)]
			if !ok {
				return nil, fmt.Errorf("nbd: client asked for unknown export %q", data)
			}
			put64(c.w, uint64(exp.Size))
			put16(c.w, transmitFlags)
			if !noZeroes {
				c.w.Write(make([]byte, 124))
			}
			return &exp, c.w.Flush()
		case optAbort:
			c.optReply(opt, repAck, nil)
			return nil, nil
		case optList:
			for name := range s.exports {
				if name == "" {
					continue
				}
				b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
				c.optReply(opt, repServer, append(b, name...))
			}
			if err := c.optReply(opt, repAck, nil); err != nil {
				return nil, err
			}
		case optInfo, optGo:
			if len(data) < 6 {
				c.optReply(opt, repErrInvalid, nil)
				continue
			}
			nl := binary.BigEndian.Uint32(data)
			if uint64(nl)+6 > uint64(len(data)) {
				c.optReply(opt, repErrInvalid, nil)
				continue
			}
			exp, ok := s.exports[string(data[4:4+nl])]
			if !ok {
				if err := c.optReply(opt, repErrUnknown, []byte("no such export")); err != nil {
					return nil, err
				}
				continue
			}
			info := binary.BigEndian.AppendUint16(nil, infoExport)
			info = binary.BigEndian.AppendUint64(info, uint64(exp.Size))
			info = binary.BigEndian.AppendUint16(info, transmitFlags)
			c.optReply(opt, repInfo, info)
			if err := c.optReply(opt, repAck, nil); err != nil {
				return nil, err
			}
			if opt == optGo {
				return &exp, nil
			}
		default:
			if err := c.optReply(opt, repErrUnsup, nil); err != nil {
				return nil, err
			}
		}
	}
}

func (c *conn) reply(handle uint64, errno uint32, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	put32(c.w, magicSimpleRepl)
	put32(c.w, errno)
	put64(c.w, handle)
	if errno == 0 {
		c.w.Write(data)
	}
	return c.w.Flush()
}

// transmit serves requests; reads run concurrently, as QEMU pipelines them.
func (s *Server) transmit(c *conn, exp Export) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 8)
	for {
		magic, err := c.u32()
		if err != nil {
			return err
		}
		if magic != magicRequest {
			return fmt.Errorf("nbd: bad request magic %#x", magic)
		}
		_, _ = c.u16() // command flags: FUA etc. mean nothing read-only
		typ, _ := c.u16()
		handle, _ := c.u64()
		off, _ := c.u64()
		length, err := c.u32()
		if err != nil {
			return err
		}
		switch typ {
		case cmdRead:
			if length > maxRequestBytes || off+uint64(length) > uint64(exp.Size) {
				if err := c.reply(handle, errInvalid, nil); err != nil {
					return err
				}
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				buf := make([]byte, length)
				n, err := exp.Data.ReadAt(buf, int64(off))
				if n == len(buf) {
					err = nil
				}
				if err != nil {
					s.log.Error("nbd read failed", "export", exp.Name, "offset", off, "length", length, "err", err)
					c.reply(handle, errIO, nil)
					return
				}
				c.reply(handle, 0, buf)
			}()
		case cmdWrite:
			// Drain the payload; the device is read-only.
			if _, err := io.CopyN(io.Discard, c.r, int64(length)); err != nil {
				return err
			}
			if err := c.reply(handle, errPerm, nil); err != nil {
				return err
			}
		case cmdFlush:
			if err := c.reply(handle, 0, nil); err != nil {
				return err
			}
		case cmdDisc:
			return nil
		default:
			if err := c.reply(handle, errInvalid, nil); err != nil {
				return err
			}
		}
	}
}
