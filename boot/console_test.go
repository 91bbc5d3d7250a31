package boot

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/boot/guest"
)

func runFilter(t *testing.T, cooked bool, chunks []string) (string, []guest.Marker) {
	t.Helper()
	var out bytes.Buffer
	var ms []guest.Marker
	f := newConsoleFilter(&out, cooked, func(m guest.Marker, err error) {
		if err != nil {
			t.Errorf("marker error: %v", err)
			return
		}
		ms = append(ms, m)
	})
	for _, c := range chunks {
		if _, err := f.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String(), ms
}

func TestConsoleFilter(t *testing.T) {
	tests := []struct {
		name   string
		cooked bool
		in     string
		want   string
		exit   int // -1: no exit marker expected
	}{
		{"plain run", true, "\r\n<<tvix-ready>>\r\nhello\r\n<<tvix-exit 3>>\r\nreboot: Power down\r\n", "hello\n", 3},
		{"no trailing newline", true, "<<tvix-ready>>\r\nhi<<tvix-exit 0>>\r\n", "hi", 0},
		{"angle brackets pass", true, "<<tvix-ready>>\r\na << b <<<tvix <\r\n<<<tvix-exit 1>>\r\n", "a << b <<<tvix <\n<", 1},
		{"lone CR kept", true, "<<tvix-ready>>\r\na\rb\r\n<<tvix-exit 0>>\r\n", "a\rb\n", 0},
		{"raw keeps CRLF", false, "<<tvix-ready>>\r\n$ ls\r\nx\r\n", "$ ls\r\nx\r\n", -1},
		{"panic before ready shown", true, "\r\nKernel panic - not syncing\r\n", "\nKernel panic - not syncing\n", -1},
		{"blank lines after ready kept", true, "<<tvix-ready>>\r\n\r\n\r\n<<tvix-exit 0>>\r\n", "\n\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and split into single bytes: the result must not
			// depend on how the pipe reads fall.
			var bytewise []string
			for i := range tc.in {
				bytewise = append(bytewise, tc.in[i:i+1])
			}
			for _, chunks := range [][]string{{tc.in}, bytewise} {
				got, ms := runFilter(t, tc.cooked, chunks)
				if got != tc.want {
					t.Errorf("output %q, want %q", got, tc.want)
				}
				exit := -1
				for _, m := range ms {
					if m.Exit {
						exit = m.ExitCode
					}
				}
				if exit != tc.exit {
					t.Errorf("exit marker %d, want %d", exit, tc.exit)
				}
			}
		})
	}
}

func TestConsoleFilterFail(t *testing.T) {
	_, ms := runFilter(t, true, []string{"<<tvix-fail mount virtio-fs tag \"tvix\": no such device>>\r\n"})
	if len(ms) != 1 || !strings.Contains(ms[0].Fail, "no such device") {
		t.Fatalf("markers %+v", ms)
	}
}

func FuzzConsoleFilter(f *testing.F) {
	f.Add([]byte("<<tvix-ready>>\r\nhello\r\n<<tvix-exit 3>>\r\n"), true)
	f.Add([]byte("<<<tvix-<<tvix-exit 300>>"), false)
	f.Fuzz(func(t *testing.T, in []byte, cooked bool) {
		var out bytes.Buffer
		fl := newConsoleFilter(&out, cooked, func(guest.Marker, error) {})
		fl.Write(in)
		fl.Flush()
		if out.Len() > len(in) {
			t.Fatalf("output %d bytes from %d", out.Len(), len(in))
		}
		if !bytes.Contains(in, []byte(guest.MarkerPrefix)) && !cooked {
			// Without markers, raw mode only drops leading blanks.
			if !bytes.HasSuffix(in, out.Bytes()) {
				t.Fatalf("raw output %q is not a suffix of %q", out.Bytes(), in)
			}
		}
	})
}
