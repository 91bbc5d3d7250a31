package guest

import (
	"reflect"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		err  bool
	}{
		{"console=ttyS0 quiet tvix.find\n", Mode{Find: true, Tag: DefaultTag}, false},
		{"tvix.run=/nix/store/x-hello/bin/hello", Mode{Run: []string{"/nix/store/x-hello/bin/hello"}, Tag: DefaultTag}, false},
		{`a=1 tvix.run="/bin/sh -c x" b`, Mode{Run: []string{"/bin/sh", "-c", "x"}, Tag: DefaultTag}, false},
		{"init=/nix/store/s/init tvix.tag=store", Mode{System: "/nix/store/s/init", Tag: "store"}, false},
		{"tvix.shell tvix.shell=0", Mode{Tag: DefaultTag}, false},
		{"tvix.shell=script", Mode{Shell: true, ShellScript: true, Tag: DefaultTag}, false},
		{"init=relative", Mode{}, true},
		{"tvix.run=", Mode{}, true},
		{"tvix.run64=!!", Mode{}, true},
		{"tvix.tag=", Mode{}, true},
		{"tvix.find tvix.disks=2", Mode{Find: true, Tag: DefaultTag, Disks: 2}, false},
		{"tvix.disks=x", Mode{}, true},
		{"tvix.disks=-1", Mode{}, true},
	}
	for _, tc := range tests {
		got, err := ParseCmdline(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestEncodeRunRoundTrip(t *testing.T) {
	for _, argv := range [][]string{
		{"/nix/store/x/bin/hello"},
		{"/nix/store/x/bin/hello", "7"},
		{"/bin/sh", "-c", "echo 'hi there'; exit 3"},
		{"/bin/x", "", "a\"b", "tab\there"},
	} {
		m, err := ParseCmdline("console=ttyS0 " + EncodeRun(argv) + " quiet")
		if err != nil {
			t.Fatalf("%q: %v", argv, err)
		}
		if !reflect.DeepEqual(m.Run, argv) {
			t.Errorf("round trip %q → %q", argv, m.Run)
		}
	}
}

func TestMarkers(t *testing.T) {
	for _, n := range []int{0, 1, 255} {
		s := ExitMarker(n)
		m, err := ParseMarker(s[len(MarkerPrefix) : len(s)-len(MarkerSuffix)])
		if err != nil || !m.Exit || m.ExitCode != n {
			t.Errorf("exit %d: %+v %v", n, m, err)
		}
	}
	s := FailMarker("bad >> thing\nhere")
	m, err := ParseMarker(s[len(MarkerPrefix) : len(s)-len(MarkerSuffix)])
	if err != nil || m.Fail == "" {
		t.Errorf("fail marker: %+v %v", m, err)
	}
	s = ReadyMarkerWith([]Stage{{"init", 1500 * time.Millisecond}, {"store", 2 * time.Second}})
	m, err = ParseMarker(s[len(MarkerPrefix) : len(s)-len(MarkerSuffix)])
	if want := []Stage{{"init", 1500 * time.Millisecond}, {"store", 2 * time.Second}}; err != nil || !m.Ready || !reflect.DeepEqual(m.Stages, want) {
		t.Errorf("ready marker %q: %+v %v", s, m, err)
	}
	for _, bad := range []string{"exit x", "exit 256", "exit -1", "what", "ready init", "ready init=x", "ready init=-1"} {
		if _, err := ParseMarker(bad); err == nil {
			t.Errorf("ParseMarker(%q) succeeded", bad)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`console=ttyS0 tvix.run="/bin/sh -c x" tvix.find init=/x`)
	f.Add("tvix.run64=L2Jpbi9zaAAtYw")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCmdline(s)
		if err == nil && m.System != "" && m.System[0] != '/' {
			t.Fatalf("relative init accepted: %q", m.System)
		}
		if err == nil && m.Run != nil && m.Run[0] == "" {
			t.Fatalf("empty program accepted from %q", s)
		}
	})
}
