package castore

import (
	"bytes"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"
	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore/castorev1"
)

// Limits shared with Tvix's Rust model; a filesystem could not hold more.
const (
	MaxNameLen   = 255
	MaxTargetLen = 4095
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// DirectoryDigest is the BLAKE3 of the deterministic encoding, which equals
// what prost (Tvix) produces, so digests interoperate.
func DirectoryDigest(d *castorev1.Directory) Digest {
	b, err := deterministic.Marshal(d)
	if err != nil {
		// Marshalling a message of only bytes/uint64/bool fields cannot fail.
		panic(fmt.Sprintf("marshal directory: %v", err))
	}
	return blake3.Sum256(b)
}

// DirectorySize is the recursive entry count Tvix uses for DirectoryNode.size:
// every child counts 1, a directory child adds its own size. ok is false on
// uint64 overflow.
func DirectorySize(d *castorev1.Directory) (size uint64, ok bool) {
	add := func(n uint64) bool {
		if size > math.MaxUint64-n {
			return false
		}
		size += n
		return true
	}
	for _, n := range d.GetDirectories() {
		if n.GetSize() == math.MaxUint64 || !add(1+n.GetSize()) {
			return 0, false
		}
	}
	return size, add(uint64(len(d.GetFiles()))) && add(uint64(len(d.GetSymlinks())))
}

// ValidationError names the directory, the entry and the rule broken.
type ValidationError struct {
	Directory Digest
	Entry     []byte
	Rule      string
}

func (e *ValidationError) Error() string {
	if e.Entry == nil {
		return fmt.Sprintf("invalid directory %s: %s", e.Directory, e.Rule)
	}
	return fmt.Sprintf("invalid directory %s: entry %q: %s", e.Directory, e.Entry, e.Rule)
}

// ValidateName checks a directory entry name against the rules every
// filesystem and NAR needs: non-empty, not . or .., no slash or NUL.
func ValidateName(name []byte) string {
	switch {
	case len(name) == 0:
		return "empty name"
	case bytes.Equal(name, []byte(".")) || bytes.Equal(name, []byte("..")):
		return "name is . or .."
	case bytes.IndexByte(name, '/') >= 0:
		return "name contains /"
	case bytes.IndexByte(name, 0) >= 0:
		return "name contains NUL"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("name longer than %d bytes", MaxNameLen)
	}
	return ""
}

// ValidateSymlinkTarget returns the broken rule, or "".
func ValidateSymlinkTarget(t []byte) string {
	switch {
	case len(t) == 0:
		return "empty symlink target"
	case bytes.IndexByte(t, 0) >= 0:
		return "symlink target contains NUL"
	case len(t) > MaxTargetLen:
		return fmt.Sprintf("symlink target longer than %d bytes", MaxTargetLen)
	}
	return ""
}

// ValidateDirectory checks everything that can be checked about d alone:
// names sorted and unique across the three lists, valid names, 32-byte
// digests, valid symlink targets and a size that does not overflow. Whether
// each DirectoryNode.size matches the child it names needs the child, see
// CheckChildSize.
func ValidateDirectory(d *castorev1.Directory) error {
	fail := func(entry []byte, rule string, args ...any) error {
		return &ValidationError{Directory: DirectoryDigest(d), Entry: entry, Rule: fmt.Sprintf(rule, args...)}
	}
	seen := make(map[string]struct{}, len(d.GetDirectories())+len(d.GetFiles())+len(d.GetSymlinks()))
	check := func(kind string, prev, name []byte, i int) error {
		if r := ValidateName(name); r != "" {
			return fail(name, "%s", r)
		}
		if i > 0 {
			switch c := bytes.Compare(prev, name); {
			case c == 0:
				return fail(name, "duplicate name in %s", kind)
			case c > 0:
				return fail(name, "%s not sorted: %q comes after %q", kind, name, prev)
			}
		}
		if _, dup := seen[string(name)]; dup {
			return fail(name, "name used by more than one node")
		}
		seen[string(name)] = struct{}{}
		return nil
	}
	for i, n := range d.GetDirectories() {
		var prev []byte
		if i > 0 {
			prev = d.Directories[i-1].GetName()
		}
		if err := check("directories", prev, n.GetName(), i); err != nil {
			return err
		}
		if len(n.GetDigest()) != DigestSize {
			return fail(n.GetName(), "directory digest has %d bytes, want %d", len(n.GetDigest()), DigestSize)
		}
	}
	for i, n := range d.GetFiles() {
		var prev []byte
		if i > 0 {
			prev = d.Files[i-1].GetName()
		}
		if err := check("files", prev, n.GetName(), i); err != nil {
			return err
		}
		if len(n.GetDigest()) != DigestSize {
			return fail(n.GetName(), "file digest has %d bytes, want %d", len(n.GetDigest()), DigestSize)
		}
	}
	for i, n := range d.GetSymlinks() {
		var prev []byte
		if i > 0 {
			prev = d.Symlinks[i-1].GetName()
		}
		if err := check("symlinks", prev, n.GetName(), i); err != nil {
			return err
		}
		if r := ValidateSymlinkTarget(n.GetTarget()); r != "" {
			return fail(n.GetName(), "%s", r)
		}
	}
	if _, ok := DirectorySize(d); !ok {
		return fail(nil, "size overflows uint64")
	}
	return nil
}

// CheckChildSize verifies that the DirectoryNode naming child records the
// child's real size; parent is only used for the error message.
func CheckChildSize(parent Digest, node *castorev1.DirectoryNode, child *castorev1.Directory) error {
	size, _ := DirectorySize(child)
	if node.GetSize() != size {
		return &ValidationError{Directory: parent, Entry: node.GetName(),
			Rule: fmt.Sprintf("size %d does not match the %d entries of directory %s", node.GetSize(), size, DirectoryDigest(child))}
	}
	return nil
}
