package virtiofs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// region is one piece of guest RAM shared by the VMM. The vring addresses
// come as VMM virtual addresses (uva), the descriptors as guest physical
// addresses (gpa); both map into data.
type region struct {
	gpa, uva, size uint64
	data           []byte // len == size
	mapping        []byte // what to munmap; nil for test memory
}

type memory struct {
	regions []region
}

// mapRegions mmaps each fd (MAP_SHARED: the guest's writes must be seen) and
// closes the fds, which the mappings keep alive.
func mapRegions(descs []memRegionDesc, fds []int) (*memory, error) {
	defer closeAll(fds)
	if len(fds) != len(descs) {
		return nil, fmt.Errorf("memory table: %d regions but %d file descriptors", len(descs), len(fds))
	}
	m := &memory{}
	for i, d := range descs {
		length := d.MmapOffset + d.Size
		if length > 1<<46 {
			m.unmap()
			return nil, fmt.Errorf("memory region %d: %d bytes is implausibly large", i, length)
		}
		b, err := unix.Mmap(fds[i], 0, int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			m.unmap()
			return nil, fmt.Errorf("mmap memory region %d (%d bytes): %w", i, length, err)
		}
		m.regions = append(m.regions, region{
			gpa: d.GuestAddr, uva: d.UserAddr, size: d.Size,
			data: b[d.MmapOffset:length], mapping: b,
		})
	}
	return m, nil
}

func (m *memory) unmap() {
	if m == nil {
		return
	}
	for _, r := range m.regions {
		if r.mapping != nil {
			unix.Munmap(r.mapping)
		}
	}
	m.regions = nil
}

// uvaSlice returns n bytes at a VMM virtual address; rings never straddle
// regions, so neither may the result.
func (m *memory) uvaSlice(uva, n uint64) ([]byte, error) {
	for _, r := range m.regions {
		if uva >= r.uva && uva-r.uva < r.size {
			off := uva - r.uva
			if n > r.size-off {
				break
			}
			return r.data[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("VMM address %#x+%d is outside guest memory", uva, n)
}

// gpaSlice returns n bytes at a guest physical address within one region.
func (m *memory) gpaSlice(gpa, n uint64) ([]byte, error) {
	for _, r := range m.regions {
		if gpa >= r.gpa && gpa-r.gpa < r.size {
			off := gpa - r.gpa
			if n > r.size-off {
				break
			}
			return r.data[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("guest address %#x+%d is outside guest memory", gpa, n)
}

// appendGPA appends the buffer [gpa, gpa+n) to iov, split where it crosses
// regions.
func (m *memory) appendGPA(iov [][]byte, gpa, n uint64) ([][]byte, error) {
	for n > 0 {
		found := false
		for _, r := range m.regions {
			if gpa >= r.gpa && gpa-r.gpa < r.size {
				off := gpa - r.gpa
				k := min(n, r.size-off)
				iov = append(iov, r.data[off:off+k:off+k])
				gpa += k
				n -= k
				found = true
				break
			}
		}
		if !found {
			return iov, fmt.Errorf("guest address %#x (+%d) is outside guest memory", gpa, n)
		}
	}
	return iov, nil
}
