// Package nartest makes NARs for tests and benchmarks of the code that
// walks trees: shapes that real store paths rarely have but an uploader
// can send.
package nartest

import (
	"io"
	"strings"

	"github.com/tvix-go/tvix/nix/nar"
)

// Nested writes the NAR of depth directories nested one in another, each
// holding one entry named name, the innermost an empty file. Depth 0 is
// that file alone.
func Nested(w io.Writer, depth int, name string) error {
	nw := nar.NewWriter(w)
	for range depth {
		if err := nw.Directory(); err != nil {
			return err
		}
		if err := nw.Entry([]byte(name)); err != nil {
			return err
		}
	}
	if err := nw.File(false, 0, strings.NewReader("")); err != nil {
		return err
	}
	for range depth {
		if err := nw.Leave(); err != nil {
			return err
		}
	}
	return nw.Close()
}

// Wide writes the NAR of one directory holding n empty files, named by
// their index in fixed-width decimal so that they sort.
func Wide(w io.Writer, n int) error {
	nw := nar.NewWriter(w)
	if err := nw.Directory(); err != nil {
		return err
	}
	width := len(itoa(n))
	for i := range n {
		s := itoa(i)
		if err := nw.Entry([]byte(strings.Repeat("0", width-len(s)) + s)); err != nil {
			return err
		}
		if err := nw.File(false, 0, strings.NewReader("")); err != nil {
			return err
		}
	}
	if err := nw.Leave(); err != nil {
		return err
	}
	return nw.Close()
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	for {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[p:])
		}
	}
}
