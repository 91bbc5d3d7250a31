package meminfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	good := "MemTotal:       24683584 kB\nMemFree:        1000 kB\nMemAvailable:   23493228 kB\n"
	m, err := parseMeminfo([]byte(good))
	if err != nil || m.Total != 24683584<<10 || m.Available != 23493228<<10 {
		t.Fatalf("got %+v, %v", m, err)
	}
	for _, bad := range []string{
		"MemTotal: 10 kB\n",                     // no MemAvailable
		"MemTotal: 10 MB\nMemAvailable: 5 kB\n", // unit
		"MemTotal: x kB\nMemAvailable: 5 kB\n",  // number
		"MemTotal: -1 kB\nMemAvailable: 5 kB\n", // negative
	} {
		if _, err := parseMeminfo([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCgroupLimit(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("svc/memory.max", "1073741824\n")
	write("svc/memory.current", "268435456\n")
	write("memory/job/memory.limit_in_bytes", "9223372036854771712\n") // v1: no limit
	write("memory/job/memory.usage_in_bytes", "1000\n")
	write("memory/lim/memory.limit_in_bytes", "2147483648\n")
	write("memory/lim/memory.usage_in_bytes", "1073741824\n")
	write("open/memory.max", "max\n")
	write("open/memory.current", "5\n")
	cases := []struct {
		cgroup      string
		limit, used int64
		ok          bool
	}{
		{"0::/svc\n", 1 << 30, 1 << 28, true},
		{"0::/open\n", 0, 0, false},
		{"4:memory:/job\n0::/\n", 0, 0, false},
		{"4:memory:/lim\n", 2 << 30, 1 << 30, true},
		{"4:cpu,memory:/lim\n", 2 << 30, 1 << 30, true},
		{"0::/missing\n", 0, 0, false},
	}
	for _, c := range cases {
		limit, used, ok := cgroupLimit(root, []byte(c.cgroup))
		if limit != c.limit || used != c.used || ok != c.ok {
			t.Errorf("%q: got %d, %d, %v; want %d, %d, %v", c.cgroup, limit, used, ok, c.limit, c.used, c.ok)
		}
	}
	m := Memory{Total: 8 << 30, Available: 6 << 30}.capped(1<<30, 1<<28)
	if m.Total != 1<<30 || m.Available != 3<<28 {
		t.Errorf("capped: %+v", m)
	}
	if m := (Memory{Total: 8 << 30, Available: 6 << 30}).capped(16<<30, 0); m.Total != 8<<30 || m.Available != 6<<30 {
		t.Errorf("a limit above RAM changed it: %+v", m)
	}
}

func TestReadThisMachine(t *testing.T) {
	m, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if m.Total <= 0 || m.Available <= 0 || m.Available > m.Total {
		t.Fatalf("implausible: %+v", m)
	}
}
