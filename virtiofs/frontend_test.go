package virtiofs

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// frontend plays the VMM and the guest driver: it shares a memfd as guest
// RAM, sets up split virtqueues in it and puts FUSE requests on them.
type frontend struct {
	t    testing.TB
	conn *net.UnixConn
	mem  []byte
	fd   int

	queues map[int]*testQueue
	bufOff uint64 // next free buffer byte
	unique uint64
}

const (
	testMemSize = 4 << 20
	testGPA     = 0x100000       // guest physical base
	testUVA     = 0x7f0000000000 // VMM virtual base; never dereferenced
	testQSize   = 64
)

type testQueue struct {
	idx               int
	off               uint64 // offset of desc table; avail at +0x1000, used at +0x2000
	kick, call        int
	availIdx, usedIdx uint16
	nextDesc          uint16
}

func newFrontend(t testing.TB, sock string) *frontend {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	f := &frontend{t: t, conn: c.(*net.UnixConn), queues: map[int]*testQueue{}, bufOff: 0x40000}
	f.fd, err = unix.MemfdCreate("guest-ram", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(f.fd, testMemSize); err != nil {
		t.Fatal(err)
	}
	f.mem, err = unix.Mmap(f.fd, 0, testMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	return f
}

func (f *frontend) close() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	for _, q := range f.queues {
		unix.Close(q.kick)
		unix.Close(q.call)
	}
	f.queues = map[int]*testQueue{}
	if f.mem != nil {
		unix.Munmap(f.mem)
		unix.Close(f.fd)
		f.mem = nil
	}
}

func (f *frontend) send(req uint32, flags uint32, payload []byte, fds ...int) {
	f.t.Helper()
	b := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(b, req)
	binary.LittleEndian.PutUint32(b[4:], flagVersion|flags)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[headerSize:], payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := f.conn.WriteMsgUnix(b, oob, nil); err != nil {
		f.t.Fatalf("send %s: %v", requestName(req), err)
	}
}

func (f *frontend) recv(req uint32) []byte {
	f.t.Helper()
	f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := readMessage(f.conn)
	if err != nil {
		f.t.Fatalf("reply to %s: %v", requestName(req), err)
	}
	if m.Request != req || m.Flags&flagReply == 0 {
		f.t.Fatalf("reply to %s: got request %d flags %#x", requestName(req), m.Request, m.Flags)
	}
	return m.payload
}

func (f *frontend) call(req uint32, payload []byte, fds ...int) []byte {
	f.send(req, 0, payload, fds...)
	return f.recv(req)
}

func (f *frontend) getU64(req uint32) uint64 {
	v, err := parseU64(f.call(req, nil))
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// handshake negotiates features and sets the memory table the way QEMU does.
func (f *frontend) handshake() {
	f.t.Helper()
	f.send(reqSetOwner, 0, nil)
	feat := f.getU64(reqGetFeatures)
	if feat&featVersion1 == 0 || feat&featProtocolFeatures == 0 {
		f.t.Fatalf("features %#x lack VERSION_1 or PROTOCOL_FEATURES", feat)
	}
	pf := f.getU64(reqGetProtocolFeatures)
	f.send(reqSetProtocolFeatures, 0, u64Payload(pf&(protoFeatMQ|protoFeatReplyAck)))
	if n := f.getU64(reqGetQueueNum); n < 2 {
		f.t.Fatalf("GET_QUEUE_NUM = %d, want >= 2", n)
	}
	f.send(reqSetFeatures, 0, u64Payload(featVersion1|featProtocolFeatures|featRingIndirectDesc))
	mt := make([]byte, 8+memRegionSize)
	binary.LittleEndian.PutUint32(mt, 1)
	binary.LittleEndian.PutUint64(mt[8:], testGPA)
	binary.LittleEndian.PutUint64(mt[16:], testMemSize)
	binary.LittleEndian.PutUint64(mt[24:], testUVA)
	binary.LittleEndian.PutUint64(mt[32:], 0)
	f.send(reqSetMemTable, flagNeedReply, mt, f.fd)
	if ack, _ := parseU64(f.recv(reqSetMemTable)); ack != 0 {
		f.t.Fatalf("SET_MEM_TABLE ack = %d", ack)
	}
}

func (f *frontend) startQueue(idx int) *testQueue {
	f.t.Helper()
	q := &testQueue{idx: idx, off: uint64(idx) * 0x4000}
	var err error
	if q.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		f.t.Fatal(err)
	}
	if q.call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.t.Fatal(err)
	}
	clear(f.mem[q.off : q.off+0x4000])
	f.send(reqSetVringNum, 0, vringState{uint32(idx), testQSize}.bytes())
	f.send(reqSetVringBase, 0, vringState{uint32(idx), 0}.bytes())
	a := make([]byte, vringAddrSize)
	binary.LittleEndian.PutUint32(a, uint32(idx))
	binary.LittleEndian.PutUint64(a[8:], testUVA+q.off)
	binary.LittleEndian.PutUint64(a[16:], testUVA+q.off+0x2000)
	binary.LittleEndian.PutUint64(a[24:], testUVA+q.off+0x1000)
	f.send(reqSetVringAddr, 0, a)
	f.send(reqSetVringCall, 0, u64Payload(uint64(idx)), q.call)
	f.send(reqSetVringKick, 0, u64Payload(uint64(idx)), q.kick)
	f.send(reqSetVringEnable, 0, vringState{uint32(idx), 1}.bytes())
	f.queues[idx] = q
	return q
}

func (f *frontend) alloc(n int) uint64 {
	off := f.bufOff
	f.bufOff += uint64(n+63) &^ 63
	if f.bufOff > testMemSize {
		f.bufOff = 0x40000
		off = f.bufOff
		f.bufOff += uint64(n+63) &^ 63
	}
	return off
}

// pending is a request on the ring whose reply is still outstanding.
type pending struct {
	head   uint16
	outOff uint64
	outLen int
}

// put places a chain (request split into two readable descriptors, and a
// writable reply buffer, optionally through an indirect table) on q.
func (f *frontend) put(q *testQueue, req []byte, outLen int, indirect bool) pending {
	inOff := f.alloc(len(req))
	copy(f.mem[inOff:], req)
	outOff := f.alloc(outLen)
	clear(f.mem[outOff : outOff+uint64(outLen)])
	split := min(len(req), 16)
	bufs := []struct {
		off   uint64
		n     int
		write bool
	}{{inOff, split, false}, {inOff + uint64(split), len(req) - split, false}, {outOff, outLen, true}}
	if bufs[1].n == 0 {
		bufs = append(bufs[:1], bufs[2])
	}
	writeDesc := func(table []byte, i int, addr uint64, n int, flags uint16, next uint16) {
		d := table[16*i:]
		binary.LittleEndian.PutUint64(d, addr)
		binary.LittleEndian.PutUint32(d[8:], uint32(n))
		binary.LittleEndian.PutUint16(d[12:], flags)
		binary.LittleEndian.PutUint16(d[14:], next)
	}
	desc := f.mem[q.off : q.off+16*testQSize]
	head := q.nextDesc
	if indirect {
		tOff := f.alloc(16 * len(bufs))
		table := f.mem[tOff:]
		for i, b := range bufs {
			var fl uint16
			if b.write {
				fl |= virtqDescFlagWrite
			}
			if i < len(bufs)-1 {
				fl |= virtqDescFlagNext
			}
			writeDesc(table, i, testGPA+b.off, b.n, fl, uint16(i+1))
		}
		writeDesc(desc, int(head), testGPA+tOff, 16*len(bufs), virtqDescFlagIndirect, 0)
		q.nextDesc = (q.nextDesc + 1) % testQSize
	} else {
		for i, b := range bufs {
			cur := q.nextDesc
			q.nextDesc = (q.nextDesc + 1) % testQSize
			var fl uint16
			if b.write {
				fl |= virtqDescFlagWrite
			}
			if i < len(bufs)-1 {
				fl |= virtqDescFlagNext
			}
			writeDesc(desc, int(cur), testGPA+b.off, b.n, fl, q.nextDesc)
		}
	}
	avail := f.mem[q.off+0x1000:]
	binary.LittleEndian.PutUint16(avail[4+2*int(q.availIdx%testQSize):], head)
	q.availIdx++
	binary.LittleEndian.PutUint16(avail[2:], q.availIdx)
	return pending{head: head, outOff: outOff, outLen: outLen}
}

func (f *frontend) kick(q *testQueue) {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(q.kick, one[:]); err != nil {
		f.t.Fatal(err)
	}
}

// waitUsed waits for n more used elements and returns head → written len.
func (f *frontend) waitUsed(q *testQueue, n int) map[uint16]uint32 {
	f.t.Helper()
	used := f.mem[q.off+0x2000:]
	deadline := time.Now().Add(10 * time.Second)
	got := map[uint16]uint32{}
	for len(got) < n {
		idx := binary.LittleEndian.Uint16(used[2:])
		for q.usedIdx != idx {
			e := used[4+8*int(q.usedIdx%testQSize):]
			got[uint16(binary.LittleEndian.Uint32(e))] = binary.LittleEndian.Uint32(e[4:])
			q.usedIdx++
		}
		if len(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("queue %d: %d of %d replies after 10s", q.idx, len(got), n)
		}
		pfd := []unix.PollFd{{Fd: int32(q.call), Events: unix.POLLIN}}
		unix.Poll(pfd, 100)
		var b [8]byte
		unix.Read(q.call, b[:])
	}
	return got
}

// roundTrip sends one FUSE request and returns the reply's status and body.
func (f *frontend) roundTrip(q *testQueue, req []byte, outLen int, indirect bool) (int32, []byte) {
	f.t.Helper()
	p := f.put(q, req, outLen, indirect)
	f.kick(q)
	got := f.waitUsed(q, 1)
	n, ok := got[p.head]
	if !ok {
		f.t.Fatalf("reply for head %d missing; got %v", p.head, got)
	}
	return f.reply(p, n)
}

func (f *frontend) reply(p pending, n uint32) (int32, []byte) {
	f.t.Helper()
	if n < 16 || int(n) > p.outLen {
		f.t.Fatalf("reply of %d bytes (buffer %d)", n, p.outLen)
	}
	out := f.mem[p.outOff : p.outOff+uint64(n)]
	var h fuse.OutHeader
	copy(structBytes(&h), out)
	if h.Length != n {
		f.t.Fatalf("reply header length %d, used length %d", h.Length, n)
	}
	return h.Status, append([]byte(nil), out[16:]...)
}

func structBytes[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// FUSE opcodes (linux/fuse.h).
const (
	opLookup  = 1
	opGetattr = 3
	opOpen    = 14
	opRead    = 15
	opInit    = 26
)

func (f *frontend) hdr(op uint32, node uint64, length int) fuse.InHeader {
	f.unique++
	return fuse.InHeader{Length: uint32(length), Opcode: op, Unique: f.unique, NodeId: node}
}

func (f *frontend) initReq() []byte {
	in := fuse.InitIn{Major: 7, Minor: 31, MaxReadAhead: 128 << 10}
	in.InHeader = f.hdr(opInit, 0, int(unsafe.Sizeof(in)))
	return append([]byte(nil), structBytes(&in)...)
}

func (f *frontend) lookupReq(parent uint64, name string) []byte {
	var h fuse.InHeader
	n := int(unsafe.Sizeof(h)) + len(name) + 1
	h = f.hdr(opLookup, parent, n)
	b := append([]byte(nil), structBytes(&h)...)
	b = append(b, name...)
	return append(b, 0)
}

func (f *frontend) openReq(node uint64) []byte {
	in := fuse.OpenIn{Flags: unix.O_RDONLY}
	in.InHeader = f.hdr(opOpen, node, int(unsafe.Sizeof(in)))
	return append([]byte(nil), structBytes(&in)...)
}

func (f *frontend) readReq(node, fh uint64, size uint32) []byte {
	in := fuse.ReadIn{Fh: fh, Size: size}
	in.InHeader = f.hdr(opRead, node, int(unsafe.Sizeof(in)))
	return append([]byte(nil), structBytes(&in)...)
}

func (f *frontend) getattrReq(node uint64) []byte {
	in := fuse.GetAttrIn{}
	in.InHeader = f.hdr(opGetattr, node, int(unsafe.Sizeof(in)))
	return append([]byte(nil), structBytes(&in)...)
}

// readFile does INIT-less LOOKUP, OPEN and READ of a root entry.
func (f *frontend) readFile(q *testQueue, name string, indirect bool) (string, error) {
	st, body := f.roundTrip(q, f.lookupReq(1, name), 16+int(unsafe.Sizeof(fuse.EntryOut{})), indirect)
	if st != 0 {
		return "", fmt.Errorf("lookup %s: status %d", name, st)
	}
	var e fuse.EntryOut
	copy(structBytes(&e), body)
	st, body = f.roundTrip(q, f.openReq(e.NodeId), 16+int(unsafe.Sizeof(fuse.OpenOut{})), indirect)
	if st != 0 {
		return "", fmt.Errorf("open %s: status %d", name, st)
	}
	var o fuse.OpenOut
	copy(structBytes(&o), body)
	st, body = f.roundTrip(q, f.readReq(e.NodeId, o.Fh, 4096), 16+4096, indirect)
	if st != 0 {
		return "", fmt.Errorf("read %s: status %d", name, st)
	}
	return string(body), nil
}

func (f *frontend) fuseInit(q *testQueue) {
	f.t.Helper()
	st, body := f.roundTrip(q, f.initReq(), 16+int(unsafe.Sizeof(fuse.InitOut{})), false)
	if st != 0 {
		f.t.Fatalf("FUSE INIT: status %d", st)
	}
	var out fuse.InitOut
	copy(structBytes(&out), body)
	if out.Major != 7 {
		f.t.Fatalf("FUSE INIT: major %d", out.Major)
	}
}
