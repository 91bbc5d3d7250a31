package boot

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/boot/guest"
)

// InitramfsSpec is what goes into the initramfs.
type InitramfsSpec struct {
	// Init is the tvix-init binary (static), installed as /init.
	Init string
	// ModulesDir is /lib/modules/<kernel release>; empty when the kernel
	// has everything built in.
	ModulesDir string
	// Modules are loaded with their dependencies, e.g. virtiofs and
	// virtio_mmio. Built-in ones are skipped.
	Modules []string
	// Shell, if set, is a static shell (busybox) installed as /bin/sh
	// with its applets, for tvix.shell.
	Shell string
	// Files are added as regular files (paths relative to the root, in
	// directories that exist).
	Files map[string][]byte
}

// WriteInitramfs writes an uncompressed newc cpio archive: unpacking it
// costs the guest less than decompressing would (TCG in particular).
func WriteInitramfs(w io.Writer, spec InitramfsSpec) error {
	c := newCPIOWriter(w)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "bin", "lib", "lib/modules", "nix", "nix/store"} {
		if err := c.dir(d, 0o755); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for PID 1 before devtmpfs is mounted.
	if err := c.charDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := addHostFile(c, "init", spec.Init, 0o755); err != nil {
		return fmt.Errorf("add init: %w", err)
	}
	if spec.Shell != "" {
		if err := addHostFile(c, "bin/busybox", spec.Shell, 0o755); err != nil {
			return fmt.Errorf("add shell: %w", err)
		}
		for _, applet := range []string{"sh", "ls", "cat", "find", "mount", "poweroff", "ps", "dmesg", "vi", "less", "grep", "du", "stat",
			"dd", "md5sum", "sha256sum", "blockdev", "head", "wc", "hexdump", "sleep", "time"} {
			if err := c.symlink("bin/"+applet, "busybox"); err != nil {
				return err
			}
		}
	}
	names := make([]string, 0, len(spec.Files))
	for name := range spec.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := spec.Files[name]
		if err := c.file(name, 0o644, int64(len(b)), bytes.NewReader(b)); err != nil {
			return fmt.Errorf("add %s: %w", name, err)
		}
	}
	if len(spec.Modules) > 0 {
		if spec.ModulesDir == "" {
			return fmt.Errorf("modules %s requested without a module directory", strings.Join(spec.Modules, ", "))
		}
		db, err := loadModuleDB(spec.ModulesDir)
		if err != nil {
			return err
		}
		files, err := db.resolve(spec.Modules)
		if err != nil {
			return err
		}
		var order strings.Builder
		for _, rel := range files {
			name := moduleName(rel) + ".ko"
			if err := addModule(c, "lib/modules/"+name, filepath.Join(spec.ModulesDir, rel)); err != nil {
				return err
			}
			order.WriteString(name + "\n")
		}
		if order.Len() > 0 {
			s := order.String()
			if err := c.file(strings.TrimPrefix(guest.ModuleOrder, "/"), 0o644, int64(len(s)), strings.NewReader(s)); err != nil {
				return err
			}
		}
	}
	return c.close()
}

func addHostFile(c *cpioWriter, name, path string, perm uint32) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return c.file(name, perm, fi.Size(), f)
}

func addModule(c *cpioWriter, name, path string) error {
	size, err := moduleSize(path)
	if err != nil {
		return err
	}
	r, err := openModule(path)
	if err != nil {
		return err
	}
	defer r.Close()
	return c.file(name, 0o644, size, r)
}
