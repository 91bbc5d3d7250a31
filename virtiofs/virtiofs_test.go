package virtiofs

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// startServer serves a loopback tree of dir and returns the socket path.
func startServer(t testing.TB, rawFS fuse.RawFileSystem) (string, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ServeListener(ctx, l, rawFS, Options{Workers: 8}); err != nil {
			t.Errorf("ServeListener returned %v after cancel", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s of cancel")
		}
	})
	return sock, cancel, done
}

func loopbackFS(t testing.TB, files map[string]string) fuse.RawFileSystem {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	root, err := fs.NewLoopbackRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs.NewNodeFS(root, &fs.Options{})
}

func TestServeReadFileAndReconnect(t *testing.T) {
	sock, cancel, done := startServer(t, loopbackFS(t, map[string]string{"hello": "hello world\n"}))

	for round := 0; round < 2; round++ {
		f := newFrontend(t, sock)
		f.handshake()
		f.startQueue(0) // hiprio
		q := f.startQueue(1)
		f.fuseInit(q)
		for _, indirect := range []bool{false, true} {
			got, err := f.readFile(q, "hello", indirect)
			if err != nil {
				t.Fatalf("round %d indirect=%v: %v", round, indirect, err)
			}
			if got != "hello world\n" {
				t.Fatalf("round %d indirect=%v: read %q", round, indirect, got)
			}
		}
		st, _ := f.roundTrip(q, f.lookupReq(1, "missing"), 16+int(unsafe.Sizeof(fuse.EntryOut{})), false)
		if st != -2 {
			t.Errorf("lookup of a missing name: status %d, want -ENOENT", st)
		}
		// Stopping the ring must answer with the next avail index (the
		// QEMU hang at poweroff came from this going unanswered).
		s, err := parseVringState(f.call(reqGetVringBase, vringState{1, 0}.bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if s.Index != 1 || uint16(s.Num) != q.availIdx {
			t.Errorf("GET_VRING_BASE = %+v, want index 1 num %d", s, q.availIdx)
		}
		s, err = parseVringState(f.call(reqGetVringBase, vringState{0, 0}.bytes()))
		if err != nil || s.Num != 0 {
			t.Errorf("GET_VRING_BASE(hiprio) = %+v, %v", s, err)
		}
		// A guest reboot restarts the rings on the same connection, from
		// fresh (zeroed) rings, and the new kernel sends FUSE INIT again.
		unix.Close(q.kick)
		unix.Close(q.call)
		q = f.startQueue(1)
		f.fuseInit(q)
		if got, err := f.readFile(q, "hello", false); err != nil || got != "hello world\n" {
			t.Fatalf("round %d after ring restart: %q, %v", round, got, err)
		}
		f.close() // the VMM goes away; the next round reconnects
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s left behind: %v", sock, err)
	}
}

// barrierFS blocks GetAttr until `want` calls are in flight at once, which
// only happens when requests are served concurrently.
type barrierFS struct {
	fuse.RawFileSystem
	want    int32
	cur     atomic.Int32
	reached chan struct{}
	once    sync.Once
}

func (b *barrierFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if b.cur.Add(1) >= b.want {
		b.once.Do(func() { close(b.reached) })
	}
	select {
	case <-b.reached:
	case <-time.After(5 * time.Second):
		return fuse.EIO
	}
	return b.RawFileSystem.GetAttr(cancel, in, out)
}

func TestConcurrentRequests(t *testing.T) {
	const parallel = 4
	bfs := &barrierFS{RawFileSystem: loopbackFS(t, nil), want: parallel, reached: make(chan struct{})}
	sock, _, _ := startServer(t, bfs)
	f := newFrontend(t, sock)
	f.handshake()
	q := f.startQueue(1)
	f.fuseInit(q)
	var ps []pending
	for i := 0; i < parallel; i++ {
		ps = append(ps, f.put(q, f.getattrReq(1), 16+int(unsafe.Sizeof(fuse.AttrOut{})), i%2 == 1))
	}
	f.kick(q)
	got := f.waitUsed(q, parallel)
	for _, p := range ps {
		st, _ := f.reply(p, got[p.head])
		if st != 0 {
			t.Errorf("getattr (head %d): status %d; requests were not served concurrently", p.head, st)
		}
	}
}

func TestListenRefusesLiveSocket(t *testing.T) {
	sock, _, _ := startServer(t, loopbackFS(t, nil))
	if _, err := Listen(sock); err == nil {
		t.Fatal("Listen on a socket another server accepts on succeeded")
	}
	// A stale socket file (no listener) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	notSock := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notSock, nil, 0o644)
	if _, err := Listen(notSock); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
}

func TestBadMessages(t *testing.T) {
	sock, _, _ := startServer(t, loopbackFS(t, nil))
	tests := []struct {
		name  string
		req   uint32
		flags uint32
		body  []byte
		ack   bool // REPLY_ACK negotiated: expect a failure status, connection stays
	}{
		{"unknown request", 99, 0, nil, false},
		{"unknown request acked", 99, flagNeedReply, nil, true},
		{"queue out of range", reqSetVringNum, flagNeedReply, vringState{7, 64}.bytes(), true},
		{"queue size not power of two", reqSetVringNum, flagNeedReply, vringState{1, 100}.bytes(), true},
		{"short payload", reqSetVringAddr, flagNeedReply, []byte{1, 2, 3}, true},
		{"mem table without fds", reqSetMemTable, flagNeedReply, func() []byte {
			b := make([]byte, 8+memRegionSize)
			binary.LittleEndian.PutUint32(b, 1)
			binary.LittleEndian.PutUint64(b[16:], 4096)
			return b
		}(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFrontend(t, sock)
			if tc.ack {
				f.send(reqSetProtocolFeatures, 0, u64Payload(protoFeatReplyAck))
			}
			f.send(tc.req, tc.flags, tc.body)
			if tc.ack {
				if st, _ := parseU64(f.recv(tc.req)); st == 0 {
					t.Fatal("got success ack for a bad request")
				}
				// Still usable afterwards.
				if n := f.getU64(reqGetQueueNum); n != 2 {
					t.Fatalf("GET_QUEUE_NUM = %d", n)
				}
				return
			}
			f.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			var b [1]byte
			if _, err := f.conn.Read(b[:]); err == nil {
				t.Fatal("connection still open after an unanswerable bad request")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
	}{
		{"header short", func() error { _, err := parseHeader(make([]byte, 5)); return err }},
		{"header version", func() error {
			_, err := parseHeader([]byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})
			return err
		}},
		{"header huge", func() error {
			_, err := parseHeader([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0})
			return err
		}},
		{"memtable zero regions", func() error { _, err := parseMemTable(make([]byte, 8)); return err }},
		{"memtable truncated", func() error { _, err := parseMemTable([]byte{2, 0, 0, 0, 0, 0, 0, 0}); return err }},
		{"vring state short", func() error { _, err := parseVringState(make([]byte, 4)); return err }},
	}
	for _, tc := range tests {
		if err := tc.fn(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte{5, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{9, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		p := b[headerSize:]
		switch h.Request {
		case reqSetMemTable:
			rs, err := parseMemTable(p)
			if err == nil && (len(rs) == 0 || len(rs) > maxMemRegions) {
				t.Fatalf("accepted %d regions", len(rs))
			}
		case reqSetVringAddr:
			parseVringAddr(p)
		default:
			parseVringState(p)
			parseU64(p)
		}
	})
}

// FuzzReadChain feeds arbitrary guest memory (descriptor table and
// buffers) to the chain walker: a hostile guest must not crash the daemon.
func FuzzReadChain(f *testing.F) {
	seed := make([]byte, 256)
	binary.LittleEndian.PutUint64(seed[0:], 0x1080)
	binary.LittleEndian.PutUint32(seed[8:], 16)
	binary.LittleEndian.PutUint16(seed[12:], virtqDescFlagNext)
	binary.LittleEndian.PutUint16(seed[14:], 1)
	binary.LittleEndian.PutUint64(seed[16:], 0x1090)
	binary.LittleEndian.PutUint32(seed[24:], 32)
	binary.LittleEndian.PutUint16(seed[28:], virtqDescFlagWrite)
	f.Add(seed, uint16(0))
	ind := make([]byte, 256)
	binary.LittleEndian.PutUint64(ind[0:], 0x1000)
	binary.LittleEndian.PutUint32(ind[8:], 32)
	binary.LittleEndian.PutUint16(ind[12:], virtqDescFlagIndirect)
	f.Add(ind, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, head uint16) {
		if len(data) < 64 {
			return
		}
		mem := &memory{regions: []region{{gpa: 0x1000, uva: 0x1000, size: uint64(len(data)), data: data}}}
		num := uint32(4)
		c, err := readChain(mem, data[:64], num, head%4)
		if err != nil {
			return
		}
		total := 0
		for _, b := range append(c.in, c.out...) {
			total += len(b)
		}
		if total > 5*len(data) {
			t.Fatalf("chain of %d bytes from %d bytes of memory", total, len(data))
		}
	})
}

func TestReadChainErrors(t *testing.T) {
	mk := func(descs ...[4]uint64) []byte { // addr, len, flags, next
		b := make([]byte, 16*4)
		for i, d := range descs {
			binary.LittleEndian.PutUint64(b[16*i:], d[0])
			binary.LittleEndian.PutUint32(b[16*i+8:], uint32(d[1]))
			binary.LittleEndian.PutUint16(b[16*i+12:], uint16(d[2]))
			binary.LittleEndian.PutUint16(b[16*i+14:], uint16(d[3]))
		}
		return b
	}
	memData := make([]byte, 8192)
	mem := &memory{regions: []region{{gpa: 0x1000, uva: 0x1000, size: 8192, data: memData}}}
	tests := []struct {
		name string
		desc []byte
	}{
		{"loop", mk([4]uint64{0x1000, 8, virtqDescFlagNext, 1}, [4]uint64{0x1000, 8, virtqDescFlagNext, 0})},
		{"next out of table", mk([4]uint64{0x1000, 8, virtqDescFlagNext, 9})},
		{"outside memory", mk([4]uint64{0x90000, 8, 0, 0})},
		{"read after write", mk([4]uint64{0x1000, 8, virtqDescFlagWrite | virtqDescFlagNext, 1}, [4]uint64{0x1000, 8, 0, 0})},
		{"indirect bad size", mk([4]uint64{0x1000, 7, virtqDescFlagIndirect, 0})},
	}
	for _, tc := range tests {
		if _, err := readChain(mem, tc.desc, 4, 0); !errors.Is(err, errChain) {
			t.Errorf("%s: err = %v, want errChain", tc.name, err)
		}
	}
	// A buffer crossing a region boundary is split, not rejected.
	mem2 := &memory{regions: []region{
		{gpa: 0x1000, size: 16, data: make([]byte, 16)},
		{gpa: 0x1010, size: 16, data: make([]byte, 16)},
	}}
	c, err := readChain(mem2, mk([4]uint64{0x1008, 16, 0, 0}), 4, 0)
	if err != nil || len(c.in) != 2 || len(c.in[0]) != 8 || len(c.in[1]) != 8 {
		t.Errorf("cross-region buffer: %v, %d pieces", err, len(c.in))
	}
}

// slowFS holds GetAttr until released, to keep requests in flight.
type slowFS struct {
	fuse.RawFileSystem
	entered chan struct{}
	release chan struct{}
}

func (s *slowFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	s.entered <- struct{}{}
	<-s.release
	return s.RawFileSystem.GetAttr(cancel, in, out)
}

// TestVMMDisappears drops the connection with rings running and a request
// in flight (QEMU killed): the server must clean up and keep serving.
func TestVMMDisappears(t *testing.T) {
	sfs := &slowFS{RawFileSystem: loopbackFS(t, map[string]string{"f": "data"}), entered: make(chan struct{}, 4), release: make(chan struct{})}
	sock, _, _ := startServer(t, sfs)
	f := newFrontend(t, sock)
	f.handshake()
	q := f.startQueue(1)
	f.fuseInit(q)
	f.put(q, f.getattrReq(1), 16+int(unsafe.Sizeof(fuse.AttrOut{})), false)
	f.kick(q)
	select {
	case <-sfs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the file system")
	}
	f.close() // the VMM is gone, its memory unmapped on its side
	time.Sleep(100 * time.Millisecond)
	close(sfs.release) // the request completes into our still-valid mapping

	f2 := newFrontend(t, sock)
	f2.handshake()
	q2 := f2.startQueue(1)
	f2.fuseInit(q2)
	if got, err := f2.readFile(q2, "f", true); err != nil || got != "data" {
		t.Fatalf("after the first VMM vanished: %q, %v", got, err)
	}
}

// BenchmarkRead measures the device path (ring, chain walk, go-fuse,
// loopback file) with 8 READs of 128 KiB in flight; no VM involved.
func BenchmarkRead(b *testing.B) {
	const size, chunk, inflight = 8 << 20, 128 << 10, 8
	data := string(make([]byte, size))
	sock, _, _ := startServer(b, loopbackFS(b, map[string]string{"big": data}))
	f := newFrontend(b, sock)
	f.handshake()
	q := f.startQueue(1)
	f.fuseInit(q)
	st, body := f.roundTrip(q, f.lookupReq(1, "big"), 16+int(unsafe.Sizeof(fuse.EntryOut{})), false)
	if st != 0 {
		b.Fatalf("lookup: %d", st)
	}
	var e fuse.EntryOut
	copy(structBytes(&e), body)
	st, body = f.roundTrip(q, f.openReq(e.NodeId), 16+int(unsafe.Sizeof(fuse.OpenOut{})), false)
	if st != 0 {
		b.Fatalf("open: %d", st)
	}
	var o fuse.OpenOut
	copy(structBytes(&o), body)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for off := 0; off < size; off += chunk * inflight {
			for j := 0; j < inflight; j++ {
				in := fuse.ReadIn{Fh: o.Fh, Offset: uint64(off + j*chunk), Size: chunk}
				in.InHeader = f.hdr(opRead, e.NodeId, int(unsafe.Sizeof(in)))
				f.put(q, append([]byte(nil), structBytes(&in)...), 16+chunk, false)
			}
			f.kick(q)
			got := f.waitUsed(q, inflight)
			for _, n := range got {
				if n != 16+chunk {
					b.Fatalf("read reply of %d bytes", n)
				}
			}
		}
	}
}
