package eval

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
)

// registerHashing adds the hash builtins.
func registerHashing(reg registerFunc) {
	reg("hashString", 2, func(ev *Evaluator, a []Value) Value {
		t := ev.str(a[0])
		h := hasherFor(t)
		if h == nil {
			ev.Throwf("unknown hash algorithm '%s'", t)
		}
		h.Write([]byte(ev.str(a[1])))
		return Str(hex.EncodeToString(h.Sum(nil)))
	})
	reg("hashFile", 2, func(ev *Evaluator, a []Value) Value {
		t := ev.str(a[0])
		h := hasherFor(t)
		if h == nil {
			ev.Throwf("unknown hash algorithm '%s'", t)
		}
		p := ev.coerceToPath(a[1])
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.Throwf("opening file '%s': %s", p, ioErrText(err))
		}
		h.Write(b)
		return Str(hex.EncodeToString(h.Sum(nil)))
	})
	reg("placeholder", 1, func(ev *Evaluator, a []Value) Value {
		return Str("/" + nixBase32(sha256Sum([]byte("nix-output:"+ev.str(a[0])))))
	})
}

func hasherFor(name string) hash.Hash {
	switch name {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	}
	return nil
}

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
