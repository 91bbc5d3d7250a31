package virtiofs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// handlerFunc serves one FUSE request: in holds the request, the reply goes
// into out; it returns how many bytes of out it wrote.
type handlerFunc func(in, out [][]byte) int

// device is the back-end state of one vhost-user connection.
type device struct {
	log     *slog.Logger
	handle  handlerFunc
	workers chan struct{} // semaphore shared by all queues of the device

	features      uint64
	protoFeatures uint64

	// memMu is held shared by every request in flight (its buffers point
	// into the mappings) and exclusively to replace the memory table.
	memMu sync.RWMutex
	mem   *memory

	queues []*vring
	usedMu sync.Mutex // the rings' shared mu
}

func newDevice(log *slog.Logger, numQueues, workers int, h handlerFunc) *device {
	d := &device{log: log, handle: h, workers: make(chan struct{}, workers)}
	for i := 0; i < numQueues; i++ {
		d.queues = append(d.queues, newVring(i, &d.usedMu))
	}
	return d
}

// serve runs the vhost-user message loop until the VMM hangs up.
func (d *device) serve(conn *net.UnixConn) error {
	defer d.shutdown()
	for {
		m, err := readMessage(conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		reply, err := d.dispatch(m)
		m.closeFDs()
		if err != nil {
			d.log.Warn("vhost-user request failed", "request", requestName(m.Request), "err", err)
		}
		switch {
		case reply != nil:
			if werr := writeReply(conn, m.Request, reply); werr != nil {
				return werr
			}
		case m.Flags&flagNeedReply != 0 && d.protoFeatures&protoFeatReplyAck != 0:
			var status uint64
			if err != nil {
				status = 1
			}
			if werr := writeReply(conn, m.Request, u64Payload(status)); werr != nil {
				return werr
			}
		case err != nil:
			// Without REPLY_ACK the VMM cannot learn about the failure;
			// going on with a half-configured device would only hang the
			// guest later, so drop the connection.
			return fmt.Errorf("vhost-user %s: %w", requestName(m.Request), err)
		}
	}
}

func (d *device) queue(idx uint32) (*vring, error) {
	idx &= vringIndexMask
	if int(idx) >= len(d.queues) {
		return nil, fmt.Errorf("queue %d does not exist (have %d)", idx, len(d.queues))
	}
	return d.queues[idx], nil
}

// dispatch handles one message; a non-nil reply is sent back.
func (d *device) dispatch(m *message) ([]byte, error) {
	d.log.Debug("vhost-user message", "request", requestName(m.Request), "size", m.Size, "fds", len(m.fds))
	switch m.Request {
	case reqGetFeatures:
		return u64Payload(offeredFeatures), nil
	case reqSetFeatures:
		f, err := parseU64(m.payload)
		if err != nil {
			return nil, err
		}
		if f&^offeredFeatures != 0 {
			return nil, fmt.Errorf("features %#x include ones not offered (%#x)", f, uint64(offeredFeatures))
		}
		d.features = f
		if f&featProtocolFeatures == 0 {
			for _, q := range d.queues {
				q.enabled = true
			}
		}
		return nil, nil
	case reqGetProtocolFeatures:
		return u64Payload(offeredProtoFeatures), nil
	case reqSetProtocolFeatures:
		f, err := parseU64(m.payload)
		if err != nil {
			return nil, err
		}
		d.protoFeatures = f & offeredProtoFeatures
		return nil, nil
	case reqGetQueueNum:
		return u64Payload(uint64(len(d.queues))), nil
	case reqGetMaxMemSlots:
		return u64Payload(maxMemRegions), nil
	case reqSetOwner:
		return nil, nil
	case reqResetOwner, reqResetDevice:
		d.reset()
		return nil, nil
	case reqSetMemTable:
		descs, err := parseMemTable(m.payload)
		if err != nil {
			return nil, err
		}
		fds := m.fds
		m.fds = nil
		mem, err := mapRegions(descs, fds)
		if err != nil {
			return nil, err
		}
		return nil, d.setMemory(mem)
	case reqSetVringNum:
		s, err := parseVringState(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(s.Index)
		if err != nil {
			return nil, err
		}
		if s.Num == 0 || s.Num > maxQueueSize || s.Num&(s.Num-1) != 0 {
			return nil, fmt.Errorf("queue %d: size %d is not a power of two in 1..%d", s.Index, s.Num, maxQueueSize)
		}
		q.num = s.Num
		return nil, nil
	case reqSetVringAddr:
		a, err := parseVringAddr(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(a.Index)
		if err != nil {
			return nil, err
		}
		q.addr, q.addrSet = a, true
		return nil, nil
	case reqSetVringBase:
		s, err := parseVringState(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(s.Index)
		if err != nil {
			return nil, err
		}
		q.base = uint16(s.Num)
		return nil, nil
	case reqGetVringBase:
		s, err := parseVringState(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(s.Index)
		if err != nil {
			return nil, err
		}
		d.stopQueue(q)
		q.setCall(-1)
		return vringState{Index: s.Index, Num: uint32(q.base)}.bytes(), nil
	case reqSetVringKick:
		v, err := parseU64(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(uint32(v))
		if err != nil {
			return nil, err
		}
		if v&vringFlagNoFD != 0 {
			return nil, fmt.Errorf("queue %d: polling without a kick fd is not supported", q.index)
		}
		fd, ok := m.takeFD()
		if !ok {
			return nil, fmt.Errorf("queue %d: SET_VRING_KICK without a file descriptor", q.index)
		}
		d.stopQueue(q)
		return nil, d.startQueue(q, fd)
	case reqSetVringCall:
		v, err := parseU64(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(uint32(v))
		if err != nil {
			return nil, err
		}
		fd := -1
		if v&vringFlagNoFD == 0 {
			if fd, _ = m.takeFD(); fd < 0 {
				return nil, fmt.Errorf("queue %d: SET_VRING_CALL without a file descriptor", q.index)
			}
		}
		q.setCall(fd)
		return nil, nil
	case reqSetVringErr:
		// We never report ring errors; the fd is closed with the message.
		return nil, nil
	case reqSetVringEnable:
		s, err := parseVringState(m.payload)
		if err != nil {
			return nil, err
		}
		q, err := d.queue(s.Index)
		if err != nil {
			return nil, err
		}
		q.enabled = s.Num != 0
		return nil, nil
	default:
		return nil, fmt.Errorf("unsupported vhost-user request %s", requestName(m.Request))
	}
}

// setMemory swaps the memory table; running rings are re-resolved against
// it once no request uses the old mappings.
func (d *device) setMemory(mem *memory) error {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	old := d.mem
	d.mem = mem
	var errs []error
	for _, q := range d.queues {
		if q.running {
			if err := q.layout(mem); err != nil {
				errs = append(errs, err)
			}
		}
	}
	old.unmap()
	return errors.Join(errs...)
}

// startQueue begins serving a ring: from SET_VRING_KICK on, the guest may
// notify us.
func (d *device) startQueue(q *vring, kickFD int) error {
	if err := unix.SetNonblock(kickFD, true); err != nil {
		unix.Close(kickFD)
		return fmt.Errorf("queue %d kick fd: %w", q.index, err)
	}
	// A non-blocking fd goes to the runtime poller, so Close interrupts
	// a pending Read when the ring is stopped.
	kick := os.NewFile(uintptr(kickFD), fmt.Sprintf("vring%d-kick", q.index))
	d.memMu.Lock()
	err := q.layout(d.mem)
	if err == nil {
		q.lastAvail = q.base
		// Resume after what the guest already got back (e.g. after a
		// reconnect or a stop/start).
		q.usedIdx = load16(q.used, 2)
	}
	d.memMu.Unlock()
	if err != nil {
		kick.Close()
		return err
	}
	q.kick = kick
	q.running = true
	q.stopping.Store(false)
	q.done = make(chan struct{})
	go d.runQueue(q, kick, q.done)
	return nil
}

// stopQueue stops the dispatcher and waits for the requests in flight, so
// that q.base is the next avail index the guest expects us to process.
func (d *device) stopQueue(q *vring) {
	if !q.running {
		return
	}
	q.stopping.Store(true)
	q.kick.Close()
	<-q.done
	q.inflight.Wait()
	q.base = q.lastAvail
	q.running = false
	q.kick = nil
}

func (d *device) runQueue(q *vring, kick *os.File, done chan struct{}) {
	defer close(done)
	var buf [8]byte
	for {
		if !d.drain(q) {
			return
		}
		if _, err := kick.Read(buf[:]); err != nil {
			if !errors.Is(err, os.ErrClosed) {
				d.log.Warn("virtio-fs kick read failed", "queue", q.index, "err", err)
			}
			return
		}
	}
}

// drain hands every available chain to a worker. It returns false when the
// ring is being stopped.
func (d *device) drain(q *vring) bool {
	for {
		if q.stopping.Load() {
			return false
		}
		d.workers <- struct{}{}
		d.memMu.RLock()
		if q.lastAvail == q.availIdx() {
			d.memMu.RUnlock()
			<-d.workers
			return true
		}
		head := q.availHead(q.lastAvail)
		q.lastAvail++
		// The guest sends a request only after it saw the replies it
		// depends on (FUSE INIT's negotiated flags above all), which the
		// workers published under usedMu. Taking it here makes that order
		// one the Go memory model (and the race detector) knows about.
		d.usedMu.Lock()
		d.usedMu.Unlock() //nolint:staticcheck // empty critical section on purpose

		c, err := readChain(d.mem, q.desc, q.num, head)
		if err != nil {
			d.log.Warn("virtio-fs: dropping request", "queue", q.index, "err", err)
			q.pushUsed(head, 0)
			d.memMu.RUnlock()
			<-d.workers
			continue
		}
		q.inflight.Add(1)
		go func() {
			defer func() {
				d.memMu.RUnlock()
				<-d.workers
				q.inflight.Done()
			}()
			n := d.handle(c.in, c.out)
			q.pushUsed(c.head, uint32(n))
		}()
	}
}

func (d *device) reset() {
	d.features, d.protoFeatures = 0, 0
	for _, q := range d.queues {
		d.stopQueue(q)
		q.setCall(-1)
		q.base, q.addrSet, q.num = 0, false, 0
		q.enabled = true // until PROTOCOL_FEATURES is negotiated again
	}
}

// shutdown releases everything the connection held.
func (d *device) shutdown() {
	for _, q := range d.queues {
		d.stopQueue(q)
		q.setCall(-1)
	}
	d.memMu.Lock()
	d.mem.unmap()
	d.mem = nil
	d.memMu.Unlock()
}
