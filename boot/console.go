package boot

import (
	"bytes"
	"io"
	"strings"

	"github.com/tvix-go/tvix/boot/guest"
)

// consoleFilter passes the guest's serial output on, cutting out the
// init's markers and reporting them. In cooked mode (output to a pipe or
// file) it turns the serial line's CRLF into LF; in raw mode (a terminal
// in raw mode, for the shell) it leaves line ends alone.
type consoleFilter struct {
	w        io.Writer
	onMarker func(guest.Marker, error)
	cooked   bool

	prefix  []byte // MarkerPrefix
	nl      []byte
	held    []byte // a partial match of prefix, not yet passed on
	body    []byte // marker text after the prefix
	inBody  bool
	swallow int // bytes of nl to drop after a marker
	cr      bool
	mute    bool // after the final marker: drop the poweroff noise
	out     bytes.Buffer
	// Before the ready marker, blank output (the kernel's console
	// handover) is held and dropped at the marker.
	ready bool
	blank []byte
	err   error // first error writing to w
}

func (f *consoleFilter) emit(p []byte) {
	if !f.ready && len(f.blank)+len(p) < 4096 && len(bytes.TrimSpace(p)) == 0 {
		f.blank = append(f.blank, p...)
		return
	}
	f.out.Write(f.blank)
	f.blank = nil
	f.ready = true // once real output went out, blank lines are output too
	f.out.Write(p)
}

func newConsoleFilter(w io.Writer, cooked bool, onMarker func(guest.Marker, error)) *consoleFilter {
	nl := "\r\n"
	if cooked {
		nl = "\n"
	}
	return &consoleFilter{w: w, cooked: cooked, onMarker: onMarker, nl: []byte(nl), prefix: []byte(guest.MarkerPrefix)}
}

func (f *consoleFilter) Write(p []byte) (int, error) {
	f.out.Reset()
	for _, b := range p {
		if f.cooked {
			if f.cr {
				f.cr = false
				if b != '\n' {
					f.byte('\r')
				}
			}
			if b == '\r' {
				f.cr = true
				continue
			}
		}
		f.byte(b)
	}
	if f.out.Len() > 0 && f.err == nil {
		// A failing destination must not stop the copy: QEMU would block
		// on a full pipe and the markers would go unseen.
		_, f.err = f.w.Write(f.out.Bytes())
	}
	return len(p), nil
}

func (f *consoleFilter) byte(b byte) {
	if f.mute {
		return
	}
	if f.inBody {
		f.body = append(f.body, b)
		if bytes.HasSuffix(f.body, []byte(guest.MarkerSuffix)) || len(f.body) > 4096 {
			f.inBody = false
			body := strings.TrimSuffix(string(f.body), guest.MarkerSuffix)
			f.body = f.body[:0]
			m, err := guest.ParseMarker(body)
			f.swallow = len(f.nl)
			if err == nil && m.Ready {
				f.blank, f.ready = nil, true
			}
			if err == nil && (m.Exit || m.Fail != "") {
				f.mute = true
			}
			if f.onMarker != nil {
				f.onMarker(m, err)
			}
		}
		return
	}
	if f.swallow > 0 {
		if b == f.nl[len(f.nl)-f.swallow] {
			f.swallow--
			return
		}
		f.swallow = 0
	}
	f.held = append(f.held, b)
	if bytes.HasPrefix(f.prefix, f.held) {
		if len(f.held) == len(f.prefix) {
			f.held = f.held[:0]
			f.inBody = true
		}
		return
	}
	// Keep the longest tail of held that can still begin a marker.
	k := 1
	for ; k < len(f.held); k++ {
		if bytes.HasPrefix(f.prefix, f.held[k:]) {
			break
		}
	}
	f.emit(f.held[:k])
	f.held = append(f.held[:0], f.held[k:]...)
}

// Flush passes on what is held back at the end of the output.
func (f *consoleFilter) Flush() error {
	if f.cr {
		f.cr = false
		f.held = append(f.held, '\r')
	}
	if len(f.held) > 0 && !f.mute && f.err == nil {
		_, err := f.w.Write(f.held)
		f.held = f.held[:0]
		return err
	}
	return nil
}
