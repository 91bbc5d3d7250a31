package main

import (
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512K", 512 << 10, true}, {"10M", 10 << 20, true}, {"1.5G", 3 << 29, true},
		{"2T", 2 << 40, true}, {"3GiB", 3 << 30, true}, {"4mb", 4 << 20, true}, {" 7 ", 7, true},
		{"", 0, false}, {"-1G", 0, false}, {"ten", 0, false}, {"5X", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "10M", "1.5GiB", "", "x", "1e400T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil && n != 0 {
			t.Fatalf("parseSize(%q) = %d with error %v", s, n, err)
		}
		if err == nil {
			if _, perr := strconv.ParseUint(strconv.FormatUint(n, 10), 10, 64); perr != nil {
				t.Fatal(perr)
			}
		}
	})
}
