package virtiofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vring is one split virtqueue (virtio 1.x, 2.7). The guest owns the
// descriptor table and the avail ring, we own the used ring.
type vring struct {
	index int

	// Set by the VMM while the ring is stopped.
	num     uint32
	addr    vringAddr
	addrSet bool
	base    uint16
	enabled bool

	// Valid while running.
	desc, avail, used []byte
	lastAvail         uint16 // dispatcher goroutine only while running

	// mu guards usedIdx, call and writes to the used ring. It is shared by
	// all rings of a device; see device.drain for why.
	mu      *sync.Mutex
	usedIdx uint16
	call    int // eventfd to interrupt the guest, -1 if none

	kick     *os.File
	running  bool
	stopping atomic.Bool
	done     chan struct{}
	inflight sync.WaitGroup
}

func newVring(i int, mu *sync.Mutex) *vring { return &vring{index: i, call: -1, mu: mu} }

// layout resolves the ring addresses against the memory table.
func (q *vring) layout(mem *memory) error {
	if !q.addrSet {
		return fmt.Errorf("queue %d: started before SET_VRING_ADDR", q.index)
	}
	if q.num == 0 || q.num > maxQueueSize || q.num&(q.num-1) != 0 {
		return fmt.Errorf("queue %d: size %d is not a power of two in 1..%d", q.index, q.num, maxQueueSize)
	}
	if mem == nil {
		return fmt.Errorf("queue %d: started before SET_MEM_TABLE", q.index)
	}
	n := uint64(q.num)
	var err error
	if q.desc, err = mem.uvaSlice(q.addr.Desc, 16*n); err != nil {
		return fmt.Errorf("queue %d descriptor table: %w", q.index, err)
	}
	if q.avail, err = mem.uvaSlice(q.addr.Avail, 4+2*n+2); err != nil {
		return fmt.Errorf("queue %d avail ring: %w", q.index, err)
	}
	if q.used, err = mem.uvaSlice(q.addr.Used, 4+8*n+2); err != nil {
		return fmt.Errorf("queue %d used ring: %w", q.index, err)
	}
	if uintptr(unsafe.Pointer(&q.used[0]))%4 != 0 {
		return fmt.Errorf("queue %d: used ring at %#x is not 4-byte aligned", q.index, q.addr.Used)
	}
	return nil
}

// load16 reads a little-endian u16 the guest may be writing concurrently.
func load16(b []byte, off int) uint16 {
	p := unsafe.Pointer(&b[off&^3])
	if uintptr(p)%4 == 0 && off&^3+4 <= len(b) {
		v := atomic.LoadUint32((*uint32)(p))
		if off&2 != 0 {
			return uint16(v >> 16)
		}
		return uint16(v)
	}
	return binary.LittleEndian.Uint16(b[off:])
}

func (q *vring) availIdx() uint16   { return load16(q.avail, 2) }
func (q *vring) availFlags() uint16 { return load16(q.avail, 0) }

// availHead returns the descriptor head at avail position i.
func (q *vring) availHead(i uint16) uint16 {
	return load16(q.avail, 4+2*int(i%uint16(q.num)))
}

// chain is one request: device-readable buffers (FUSE request) followed by
// device-writable ones (the reply).
type chain struct {
	head    uint16
	in, out [][]byte
}

var errChain = errors.New("bad descriptor chain")

// readChain walks a descriptor chain, following one level of indirection.
func readChain(mem *memory, desc []byte, num uint32, head uint16) (chain, error) {
	c := chain{head: head}
	table, tableNum := desc, num
	i := uint32(head)
	indirect, seenWrite := false, false
	for count := uint32(0); ; count++ {
		if i >= tableNum {
			return c, fmt.Errorf("%w: descriptor %d beyond table of %d", errChain, i, tableNum)
		}
		if count >= tableNum {
			return c, fmt.Errorf("%w: loop after %d descriptors", errChain, count)
		}
		d := table[16*i : 16*i+16]
		addr := binary.LittleEndian.Uint64(d)
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])
		if flags&virtqDescFlagIndirect != 0 {
			if indirect {
				return c, fmt.Errorf("%w: nested indirect descriptor", errChain)
			}
			if length == 0 || length%16 != 0 {
				return c, fmt.Errorf("%w: indirect table of %d bytes", errChain, length)
			}
			t, err := mem.gpaSlice(addr, uint64(length))
			if err != nil {
				return c, fmt.Errorf("%w: indirect table: %v", errChain, err)
			}
			table, tableNum, i, count, indirect = t, length/16, 0, 0, true
			// The loop increments count; start the new table from zero.
			count--
			continue
		}
		var err error
		if flags&virtqDescFlagWrite != 0 {
			seenWrite = true
			c.out, err = mem.appendGPA(c.out, addr, uint64(length))
		} else {
			if seenWrite {
				return c, fmt.Errorf("%w: readable descriptor after writable", errChain)
			}
			c.in, err = mem.appendGPA(c.in, addr, uint64(length))
		}
		if err != nil {
			return c, fmt.Errorf("%w: %v", errChain, err)
		}
		if flags&virtqDescFlagNext == 0 {
			return c, nil
		}
		i = uint32(next)
	}
}

// pushUsed returns a chain to the guest and interrupts it unless it asked
// not to be.
func (q *vring) pushUsed(head uint16, written uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	slot := q.used[4+8*int(q.usedIdx%uint16(q.num)):]
	binary.LittleEndian.PutUint32(slot, uint32(head))
	binary.LittleEndian.PutUint32(slot[4:], written)
	q.usedIdx++
	// The atomic store orders the element before the index (and writes our
	// used flags, 0, alongside).
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&q.used[0])), uint32(q.usedIdx)<<16)
	if q.availFlags()&virtqAvailNoInterrupt == 0 {
		q.signal()
	}
}

// signal writes the call eventfd; q.mu must be held.
func (q *vring) signal() {
	if q.call < 0 {
		return
	}
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(q.call, one[:])
		if err != unix.EINTR {
			return
		}
	}
}

func (q *vring) setCall(fd int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.call >= 0 {
		unix.Close(q.call)
	}
	q.call = fd
}
