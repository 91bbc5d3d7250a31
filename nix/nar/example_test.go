package nar_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/tvix-go/tvix/nix/nar"
)

func Example() {
	// Write: a directory with an executable and a symlink to it.
	var buf bytes.Buffer
	w := nar.NewWriter(&buf)
	w.Directory()
	w.Entry([]byte("hello"))
	w.File(true, 12, strings.NewReader("Hello World!"))
	w.Entry([]byte("link"))
	w.Symlink([]byte("hello"))
	w.Leave()
	if err := w.Close(); err != nil {
		panic(err)
	}

	// Read it back, node by node.
	r := nar.NewReader(&buf)
	for {
		n, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		switch n.Kind {
		case nar.KindFile:
			b, _ := io.ReadAll(n.Contents)
			fmt.Printf("file %q executable=%v %q\n", n.Path(), n.Executable, b)
		case nar.KindSymlink:
			fmt.Printf("symlink %q -> %s\n", n.Path(), n.Target)
		default:
			fmt.Printf("%s %q\n", n.Kind, n.Path())
		}
	}
	// Output:
	// directory ""
	// file "hello" executable=true "Hello World!"
	// symlink "link" -> hello
	// end of directory ""
}
