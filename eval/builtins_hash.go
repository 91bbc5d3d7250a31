package eval

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
)

// registerHashing adds the hash builtins.
func registerHashing(reg registerFunc) {
	reg("hashString", 2, func(ev *Evaluator, a []Value) Value {
		h := ev.hasher(ev.str(a[0]))
		h.Write([]byte(ev.str(a[1])))
		return Str(hex.EncodeToString(h.Sum(nil)))
	})
	reg("hashFile", 2, func(ev *Evaluator, a []Value) Value {
		h := ev.hasher(ev.str(a[0]))
		p := ev.coerceToPath(a[1])
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.Throwf("opening file '%s': %s", p, ioErrText(err))
		}
		h.Write(b)
		return Str(hex.EncodeToString(h.Sum(nil)))
	})
	reg("placeholder", 1, func(ev *Evaluator, a []Value) Value {
		sum := sha256.Sum256([]byte("nix-output:" + ev.str(a[0])))
		return Str("/" + nixbase32.EncodeToString(sum[:]))
	})
}

func (ev *Evaluator) hasher(algo string) hash.Hash {
	a, err := nixhash.ParseAlgo(algo)
	if err != nil {
		ev.Throwf("unknown hash algorithm '%s'", algo)
	}
	return a.New()
}
