package eval

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"sort"

	"github.com/tvix-go/tvix/eval/syntax"
)

const nixBase32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// nixBase32 is Nix's base32 (reversed bit order, own alphabet).
func nixBase32(b []byte) string {
	n := (len(b)*8-1)/5 + 1
	out := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, bit%8
		c := int(b[j]) >> k
		if j+1 < len(b) {
			c |= int(b[j+1]) << (8 - k)
		}
		out[n-1-i] = nixBase32Chars[c&0x1f]
	}
	return string(out)
}

func compressHash(h []byte, size int) []byte {
	out := make([]byte, size)
	for i, c := range h {
		out[i%size] ^= c
	}
	return out
}

// MakeStorePath computes a store path from a fingerprint type, an inner
// hash and a name, as Nix's makeStorePath does.
func MakeStorePath(storeDir, typ string, inner []byte, name string) string {
	fp := fmt.Sprintf("%s:sha256:%s:%s:%s", typ, hex.EncodeToString(inner), storeDir, name)
	h := sha256.Sum256([]byte(fp))
	return storeDir + "/" + nixBase32(compressHash(h[:], 20)) + "-" + name
}

// computeStorePath is the default for paths used as strings: the path
// `nix-store --add` would give (NAR, sha256, recursive), without a store.
func (ev *Evaluator) computeStorePath(p string) (string, error) {
	h := sha256.New()
	if err := ev.narDump(h, p); err != nil {
		return "", err
	}
	name := baseNameOf(p)
	return MakeStorePath(ev.opts.StoreDir, "source", h.Sum(nil), name), nil
}

func narStr(h hash.Hash, s string) {
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
	h.Write(l[:])
	h.Write([]byte(s))
	if pad := (8 - len(s)%8) % 8; pad > 0 {
		h.Write(make([]byte, pad))
	}
}

func (ev *Evaluator) narDump(h hash.Hash, p string) error {
	narStr(h, "nix-archive-1")
	return ev.narNode(h, p)
}

func (ev *Evaluator) narNode(h hash.Hash, p string) error {
	narStr(h, "(")
	ft, err := ev.opts.IO.FileType(p)
	if err != nil {
		return err
	}
	switch ft {
	case FileRegular:
		narStr(h, "type")
		narStr(h, "regular")
		if x, ok := ev.opts.IO.(ExecutableIO); ok {
			if exec, err := x.IsExecutable(p); err != nil {
				return err
			} else if exec {
				narStr(h, "executable")
				narStr(h, "")
			}
		}
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			return err
		}
		narStr(h, "contents")
		narStr(h, string(b))
	case FileSymlink:
		rl, ok := ev.opts.IO.(ReadlinkIO)
		if !ok {
			return fmt.Errorf("file '%s' is a symlink and the evaluator's IO cannot read links", p)
		}
		t, err := rl.Readlink(p)
		if err != nil {
			return err
		}
		narStr(h, "type")
		narStr(h, "symlink")
		narStr(h, "target")
		narStr(h, t)
	case FileDirectory:
		narStr(h, "type")
		narStr(h, "directory")
		es, err := ev.opts.IO.ReadDir(p)
		if err != nil {
			return err
		}
		sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
		for _, e := range es {
			narStr(h, "entry")
			narStr(h, "(")
			narStr(h, "name")
			narStr(h, e.Name)
			narStr(h, "node")
			if err := ev.narNode(h, p+"/"+e.Name); err != nil {
				return err
			}
			narStr(h, ")")
		}
	default:
		return fmt.Errorf("file '%s' has an unsupported type", p)
	}
	narStr(h, ")")
	return nil
}

func (ev *Evaluator) copyPathToStore(p string, pos syntax.Pos) string {
	if sp, ok := ev.storeCache[p]; ok {
		return sp
	}
	var sp string
	var err error
	if ev.opts.CopyToStore != nil {
		sp, err = ev.opts.CopyToStore(ev, p)
	} else {
		sp, err = ev.computeStorePath(p)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			ev.throwAt(pos, "getting status of '%s': No such file or directory", p)
		}
		ev.throwAt(pos, "copying path '%s' to the store: %v", p, err)
	}
	ev.storeCache[p] = sp
	return sp
}
