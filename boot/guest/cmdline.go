// Package guest is the part of `tvix boot` that runs inside the VM as PID 1
// (cmd/tvix-init), plus the kernel command line and console protocol it
// shares with the host side. It only depends on the standard library and
// x/sys so the init binary stays small.
package guest

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Console markers. The init prints them followed by a newline; the host
// strips both from the guest's output.
const (
	MarkerPrefix = "<<tvix-"
	MarkerSuffix = ">>"
	// ReadyMarker: the store is mounted, the command is about to start.
	ReadyMarker = MarkerPrefix + "ready" + MarkerSuffix
	// "<<tvix-exit N>>": the command exited with status N.
	exitWord = "exit "
	// "<<tvix-fail MESSAGE>>": the init could not do what was asked.
	failWord = "fail "
)

// ExitMarker formats the status line for exit code n.
func ExitMarker(n int) string {
	return fmt.Sprintf("%s%s%d%s", MarkerPrefix, exitWord, n, MarkerSuffix)
}

// FailMarker formats the status line for an init failure.
func FailMarker(msg string) string {
	msg = strings.NewReplacer("\n", " ", ">>", "> >").Replace(msg)
	return MarkerPrefix + failWord + msg + MarkerSuffix
}

// Stage is a point of the guest's boot and its uptime (CLOCK_BOOTTIME)
// then: "init" (PID 1 started), "modules", "disks", "store" (mounted).
type Stage struct {
	Name string
	At   time.Duration
}

// ReadyMarkerWith is the ready marker carrying the guest's stage times.
func ReadyMarkerWith(stages []Stage) string {
	var b strings.Builder
	b.WriteString(ReadyMarker[:len(ReadyMarker)-len(MarkerSuffix)])
	for _, s := range stages {
		fmt.Fprintf(&b, " %s=%.6f", s.Name, s.At.Seconds())
	}
	return b.String() + MarkerSuffix
}

// Marker is a decoded console marker.
type Marker struct {
	Ready    bool
	Stages   []Stage // with Ready
	Exit     bool
	ExitCode int
	Fail     string
}

// ParseMarker decodes the text between MarkerPrefix and MarkerSuffix.
func ParseMarker(body string) (Marker, error) {
	switch {
	case body == "ready":
		return Marker{Ready: true}, nil
	case strings.HasPrefix(body, "ready "):
		m := Marker{Ready: true}
		for _, f := range strings.Fields(body[len("ready "):]) {
			k, v, ok := strings.Cut(f, "=")
			secs, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil || secs < 0 || secs > 1e6 {
				return Marker{}, fmt.Errorf("bad ready marker %q", body)
			}
			m.Stages = append(m.Stages, Stage{Name: k, At: time.Duration(secs * float64(time.Second))})
		}
		return m, nil
	case strings.HasPrefix(body, exitWord):
		var n int
		if _, err := fmt.Sscanf(body[len(exitWord):], "%d", &n); err != nil || n < 0 || n > 255 {
			return Marker{}, fmt.Errorf("bad exit marker %q", body)
		}
		return Marker{Exit: true, ExitCode: n}, nil
	case strings.HasPrefix(body, failWord):
		return Marker{Fail: body[len(failWord):]}, nil
	}
	return Marker{}, fmt.Errorf("unknown marker %q", body)
}

// Kernel command line keys.
const (
	KeyRun   = "tvix.run"   // command line split on blanks
	KeyRun64 = "tvix.run64" // base64url(argv joined with NUL), for arbitrary args
	KeyShell = "tvix.shell"
	// ShellScript is the value of tvix.shell for piped input.
	ShellScript = "script"
	KeyFind     = "tvix.find"
	KeyTag      = "tvix.tag"
	KeyBuild    = "tvix.build"
	KeyInit     = "init"
	// KeyDisks is the number of virtio-blk disks the host attached; the
	// init waits for them and names them /dev/tvix-disk0, ...
	KeyDisks = "tvix.disks"
	// DefaultTag is the virtio-fs tag the store is exported under.
	DefaultTag = "tvix"
)

// Mode is what the init does after mounting the store.
type Mode struct {
	Build bool
	Run   []string
	Shell bool
	// ShellScript (tvix.shell=script): the host's input is not a
	// terminal but a script, fed after the ready marker and ended by
	// EOT (^D); the shell reads it as a script, not as typed lines.
	ShellScript bool
	Find        bool
	System      string // init= path to switch_root into
	Tag         string
	Disks       int
}

// SplitCmdline splits a kernel command line the way the kernel does:
// blanks separate parameters, double quotes group and are removed.
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ParseCmdline extracts the tvix mode from /proc/cmdline. The last
// occurrence of a key wins, like for kernel parameters.
func ParseCmdline(s string) (Mode, error) {
	m := Mode{Tag: DefaultTag}
	for _, p := range SplitCmdline(s) {
		k, v, hasV := strings.Cut(p, "=")
		switch k {
		case KeyRun:
			m.Run = strings.Fields(v)
			if len(m.Run) == 0 {
				return m, fmt.Errorf("%s= is empty", KeyRun)
			}
		case KeyRun64:
			b, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil {
				return m, fmt.Errorf("%s: %w", KeyRun64, err)
			}
			m.Run = strings.Split(string(b), "\x00")
			if m.Run[0] == "" {
				return m, fmt.Errorf("%s: empty program name", KeyRun64)
			}
		case KeyShell:
			m.Shell = !hasV || v != "0"
			m.ShellScript = v == ShellScript
		case KeyBuild:
			m.Build = !hasV || v != "0"
		case KeyFind:
			m.Find = !hasV || v != "0"
		case KeyInit:
			if !strings.HasPrefix(v, "/") {
				return m, fmt.Errorf("init=%q: want an absolute path", v)
			}
			m.System = v
		case KeyDisks:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 26 {
				return m, fmt.Errorf("%s=%q: want a number of disks (0-26)", KeyDisks, v)
			}
			m.Disks = n
		case KeyTag:
			if v == "" {
				return m, fmt.Errorf("%s= is empty", KeyTag)
			}
			m.Tag = v
		}
	}
	return m, nil
}

// EncodeRun returns the kernel parameter that makes the init run argv:
// readable tvix.run= when the words survive blank splitting, else
// tvix.run64=.
func EncodeRun(argv []string) string {
	plain := true
	for _, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"\\'") {
			plain = false
		}
	}
	if plain && len(argv) == 1 {
		return KeyRun + "=" + argv[0]
	}
	if plain {
		// The kernel keeps double-quoted blanks inside one parameter.
		return KeyRun + "=\"" + strings.Join(argv, " ") + "\""
	}
	return KeyRun64 + "=" + base64.RawURLEncoding.EncodeToString([]byte(strings.Join(argv, "\x00")))
}
