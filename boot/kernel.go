package boot

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// bzImagePayload locates the compressed vmlinux in a bzImage via the x86
// boot protocol header (Documentation/arch/x86/boot.rst): setup_sects at
// 0x1f1, payload_offset/length at 0x248/0x24c, relative to the protected
// mode code. The build appends the uncompressed size (4 bytes), dropped here.
func bzImagePayload(f *os.File) (*io.SectionReader, error) {
	var hdr [0x250]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("read boot header: %w", err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS boot header)")
	}
	setup := int64(hdr[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	n := int64(binary.LittleEndian.Uint32(hdr[0x24c:]))
	if n <= 4 {
		return nil, errors.New("bzImage payload is empty")
	}
	return io.NewSectionReader(f, off, n-4), nil
}

// decompressVmlinux writes the bzImage's vmlinux ELF to w.
func decompressVmlinux(kernel string, w io.Writer) error {
	f, err := os.Open(kernel)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := bzImagePayload(f)
	if err != nil {
		return err
	}
	var magic [6]byte
	if _, err := p.ReadAt(magic[:], 0); err != nil {
		return fmt.Errorf("read payload: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic[:], []byte("\xfd7zXZ\x00")):
		// The kernel's xz stream uses the x86 BCJ filter, which the Go xz
		// package lacks; xz-utils has it.
		xz, err := exec.LookPath("xz")
		if err != nil {
			return errors.New("xz-compressed kernel and no xz binary (install xz-utils)")
		}
		cmd := exec.Command(xz, "-dc", "--single-stream")
		cmd.Stdin, cmd.Stdout = p, w
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("xz: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	case bytes.HasPrefix(magic[:], []byte{0x1f, 0x8b}):
		r, err := gzip.NewReader(p)
		if err != nil {
			return err
		}
		r.Multistream(false)
		_, err = io.Copy(w, r)
		return err
	case bytes.HasPrefix(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(p, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<31))
		if err != nil {
			return err
		}
		defer d.Close()
		_, err = io.Copy(w, d)
		return err
	}
	return fmt.Errorf("kernel payload compression %x is not supported for direct boot", magic)
}

// hasPVHNote reports whether the ELF kernel has the Xen PHYS32_ENTRY note
// QEMU needs to boot it directly (PVH).
func hasPVHNote(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			continue
		}
		for len(b) >= 12 {
			nameSz := binary.LittleEndian.Uint32(b)
			descSz := binary.LittleEndian.Uint32(b[4:])
			typ := binary.LittleEndian.Uint32(b[8:])
			name := b[12:]
			if uint64(len(name)) < uint64(nameSz) {
				break
			}
			const xenElfnotePhys32Entry = 18
			if typ == xenElfnotePhys32Entry && bytes.HasPrefix(name[:nameSz], []byte("Xen")) {
				return true
			}
			adv := 12 + (uint64(nameSz)+3)&^3 + (uint64(descSz)+3)&^3
			if adv > uint64(len(b)) {
				break
			}
			b = b[adv:]
		}
	}
	return false
}

// directBootKernel returns an uncompressed vmlinux for kernel, extracted
// once into the cache. QEMU loads it with the PVH entry point, which
// spares the guest the decompression: seconds under TCG. It returns
// kernel itself when that is not possible.
func directBootKernel(kernel, cacheDir string) (string, error) {
	fi, err := os.Stat(kernel)
	if err != nil {
		return kernel, err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", kernel, fi.Size(), fi.ModTime().UnixNano())))
	out := filepath.Join(cacheDir, "vmlinux-"+hex.EncodeToString(h[:8]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return kernel, err
	}
	tmp, err := os.CreateTemp(cacheDir, ".vmlinux-*")
	if err != nil {
		return kernel, err
	}
	defer os.Remove(tmp.Name())
	if err := decompressVmlinux(kernel, tmp); err != nil {
		tmp.Close()
		return kernel, fmt.Errorf("extract vmlinux from %s: %w", kernel, err)
	}
	if err := tmp.Close(); err != nil {
		return kernel, err
	}
	if !hasPVHNote(tmp.Name()) {
		return kernel, fmt.Errorf("kernel %s has no PVH entry point (CONFIG_PVH)", kernel)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return kernel, err
	}
	return out, nil
}

// cacheDir is where extracted kernels are kept.
func cacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tvix", "boot")
	}
	return filepath.Join(os.TempDir(), "tvix-boot-cache")
}
