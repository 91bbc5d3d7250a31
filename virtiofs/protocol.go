package virtiofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// vhost-user request codes (QEMU docs/interop/vhost-user.rst, front-end
// to back-end messages).
const (
	reqGetFeatures         = 1
	reqSetFeatures         = 2
	reqSetOwner            = 3
	reqResetOwner          = 4
	reqSetMemTable         = 5
	reqSetLogBase          = 6
	reqSetLogFD            = 7
	reqSetVringNum         = 8
	reqSetVringAddr        = 9
	reqSetVringBase        = 10
	reqGetVringBase        = 11
	reqSetVringKick        = 12
	reqSetVringCall        = 13
	reqSetVringErr         = 14
	reqGetProtocolFeatures = 15
	reqSetProtocolFeatures = 16
	reqGetQueueNum         = 17
	reqSetVringEnable      = 18
	reqSetBackendReqFD     = 21
	reqGetConfig           = 24
	reqSetConfig           = 25
	reqResetDevice         = 34
	reqGetMaxMemSlots      = 36
	reqSetStatus           = 39
	reqGetStatus           = 40
)

var requestNames = map[uint32]string{
	reqGetFeatures: "GET_FEATURES", reqSetFeatures: "SET_FEATURES", reqSetOwner: "SET_OWNER",
	reqResetOwner: "RESET_OWNER", reqSetMemTable: "SET_MEM_TABLE", reqSetLogBase: "SET_LOG_BASE",
	reqSetLogFD: "SET_LOG_FD", reqSetVringNum: "SET_VRING_NUM", reqSetVringAddr: "SET_VRING_ADDR",
	reqSetVringBase: "SET_VRING_BASE", reqGetVringBase: "GET_VRING_BASE", reqSetVringKick: "SET_VRING_KICK",
	reqSetVringCall: "SET_VRING_CALL", reqSetVringErr: "SET_VRING_ERR",
	reqGetProtocolFeatures: "GET_PROTOCOL_FEATURES", reqSetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	reqGetQueueNum: "GET_QUEUE_NUM", reqSetVringEnable: "SET_VRING_ENABLE",
	reqSetBackendReqFD: "SET_BACKEND_REQ_FD", reqGetConfig: "GET_CONFIG", reqSetConfig: "SET_CONFIG",
	reqResetDevice: "RESET_DEVICE", reqGetMaxMemSlots: "GET_MAX_MEM_SLOTS",
	reqSetStatus: "SET_STATUS", reqGetStatus: "GET_STATUS",
}

func requestName(r uint32) string {
	if n, ok := requestNames[r]; ok {
		return n
	}
	return fmt.Sprintf("request#%d", r)
}

// Header flags.
const (
	flagVersion   = 0x1
	flagReply     = 0x4
	flagNeedReply = 0x8
)

// Virtio feature bits we offer.
const (
	featRingIndirectDesc  = 1 << 28
	featProtocolFeatures  = 1 << 30
	featVersion1          = 1 << 32
	protoFeatMQ           = 1 << 0
	protoFeatReplyAck     = 1 << 3
	protoFeatResetDevice  = 1 << 13
	vringFlagNoFD         = 1 << 8
	vringIndexMask        = 0xff
	headerSize            = 12
	maxPayload            = 4096
	maxMemRegions         = 8
	memRegionSize         = 32
	vringAddrSize         = 40
	vringStateSize        = 8
	offeredFeatures       = featVersion1 | featRingIndirectDesc | featProtocolFeatures
	offeredProtoFeatures  = protoFeatMQ | protoFeatReplyAck | protoFeatResetDevice
	maxFDsPerMessage      = 8
	maxQueueSize          = 32768
	virtqDescFlagNext     = 1
	virtqDescFlagWrite    = 2
	virtqDescFlagIndirect = 4
	virtqAvailNoInterrupt = 1
)

type header struct {
	Request, Flags, Size uint32
}

type message struct {
	header
	payload []byte
	fds     []int
}

// closeFDs closes the descriptors a message carried that nobody took.
func (m *message) closeFDs() {
	for _, fd := range m.fds {
		unix.Close(fd)
	}
	m.fds = nil
}

// takeFD hands the first descriptor to the caller, who then owns it.
func (m *message) takeFD() (int, bool) {
	if len(m.fds) == 0 {
		return -1, false
	}
	fd := m.fds[0]
	m.fds = m.fds[1:]
	return fd, true
}

var errShortPayload = errors.New("payload too short")

func parseHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("vhost-user header: %d bytes, want %d", len(b), headerSize)
	}
	h := header{
		Request: binary.LittleEndian.Uint32(b[0:]),
		Flags:   binary.LittleEndian.Uint32(b[4:]),
		Size:    binary.LittleEndian.Uint32(b[8:]),
	}
	if h.Flags&0x3 != flagVersion {
		return h, fmt.Errorf("vhost-user header: version %d, want 1", h.Flags&0x3)
	}
	if h.Size > maxPayload {
		return h, fmt.Errorf("vhost-user %s: payload size %d exceeds %d", requestName(h.Request), h.Size, maxPayload)
	}
	return h, nil
}

// readMessage reads one message. QEMU sends header, payload and file
// descriptors in one sendmsg, so the descriptors arrive with the header.
func readMessage(conn *net.UnixConn) (*message, error) {
	var hb [headerSize]byte
	oob := make([]byte, unix.CmsgSpace(maxFDsPerMessage*4))
	var fds []int
	got := 0
	for got < headerSize {
		n, oobn, _, _, err := conn.ReadMsgUnix(hb[got:], oob)
		if oobn > 0 {
			more, perr := parseRights(oob[:oobn])
			fds = append(fds, more...)
			if perr != nil && err == nil {
				err = perr
			}
		}
		got += n
		if err != nil {
			closeAll(fds)
			if got == 0 && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("read vhost-user header: %w", err)
		}
		if n == 0 {
			closeAll(fds)
			if got == 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("read vhost-user header: %w", io.ErrUnexpectedEOF)
		}
	}
	h, err := parseHeader(hb[:])
	if err != nil {
		closeAll(fds)
		return nil, err
	}
	m := &message{header: h, fds: fds, payload: make([]byte, h.Size)}
	if _, err := io.ReadFull(conn, m.payload); err != nil {
		m.closeFDs()
		return nil, fmt.Errorf("read vhost-user %s payload: %w", requestName(h.Request), err)
	}
	return m, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		f, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func writeReply(conn *net.UnixConn, req uint32, payload []byte) error {
	b := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(b[0:], req)
	binary.LittleEndian.PutUint32(b[4:], flagVersion|flagReply)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[headerSize:], payload)
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("write vhost-user %s reply: %w", requestName(req), err)
	}
	return nil
}

func u64Payload(v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b
}

func parseU64(p []byte) (uint64, error) {
	if len(p) < 8 {
		return 0, fmt.Errorf("u64 payload of %d bytes: %w", len(p), errShortPayload)
	}
	return binary.LittleEndian.Uint64(p), nil
}

type vringState struct{ Index, Num uint32 }

func parseVringState(p []byte) (vringState, error) {
	if len(p) < vringStateSize {
		return vringState{}, fmt.Errorf("vring state of %d bytes: %w", len(p), errShortPayload)
	}
	return vringState{binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:])}, nil
}

func (s vringState) bytes() []byte {
	b := make([]byte, vringStateSize)
	binary.LittleEndian.PutUint32(b, s.Index)
	binary.LittleEndian.PutUint32(b[4:], s.Num)
	return b
}

type vringAddr struct {
	Index, Flags              uint32
	Desc, Used, Avail, LogGPA uint64
}

func parseVringAddr(p []byte) (vringAddr, error) {
	if len(p) < vringAddrSize {
		return vringAddr{}, fmt.Errorf("vring address of %d bytes: %w", len(p), errShortPayload)
	}
	le := binary.LittleEndian
	return vringAddr{
		Index: le.Uint32(p), Flags: le.Uint32(p[4:]),
		Desc: le.Uint64(p[8:]), Used: le.Uint64(p[16:]), Avail: le.Uint64(p[24:]), LogGPA: le.Uint64(p[32:]),
	}, nil
}

// memRegionDesc is one entry of SET_MEM_TABLE.
type memRegionDesc struct {
	GuestAddr, Size, UserAddr, MmapOffset uint64
}

func parseMemTable(p []byte) ([]memRegionDesc, error) {
	if len(p) < 8 {
		return nil, fmt.Errorf("memory table of %d bytes: %w", len(p), errShortPayload)
	}
	n := binary.LittleEndian.Uint32(p)
	if n == 0 || n > maxMemRegions {
		return nil, fmt.Errorf("memory table: %d regions, want 1..%d", n, maxMemRegions)
	}
	if len(p) < 8+int(n)*memRegionSize {
		return nil, fmt.Errorf("memory table with %d regions in %d bytes: %w", n, len(p), errShortPayload)
	}
	le := binary.LittleEndian
	rs := make([]memRegionDesc, n)
	for i := range rs {
		b := p[8+i*memRegionSize:]
		rs[i] = memRegionDesc{le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])}
		if rs[i].Size == 0 {
			return nil, fmt.Errorf("memory region %d: size 0", i)
		}
		if rs[i].GuestAddr+rs[i].Size < rs[i].GuestAddr || rs[i].UserAddr+rs[i].Size < rs[i].UserAddr ||
			rs[i].MmapOffset+rs[i].Size < rs[i].MmapOffset {
			return nil, fmt.Errorf("memory region %d: address range overflows", i)
		}
	}
	return rs, nil
}
