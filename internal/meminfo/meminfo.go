// Package meminfo reads how much memory this process may use and how much
// of it is free: the machine's (/proc/meminfo), lowered to its cgroup's
// limit when it has one (cgroup v2 memory.max, v1 memory.limit_in_bytes).
// Caches size themselves by it and give memory back when it runs short.
package meminfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is what Read found, in bytes.
type Memory struct {
	Total     int64 // what the process may use: RAM, or its cgroup's limit if lower
	Available int64 // of that, what is free or reclaimable without swapping
}

// Read is the memory of this process's machine and cgroup.
func Read() (Memory, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return Memory{}, fmt.Errorf("read memory: %w", err)
	}
	m, err := parseMeminfo(b)
	if err != nil {
		return Memory{}, err
	}
	if cg, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if limit, used, ok := cgroupLimit("/sys/fs/cgroup", cg); ok {
			m = m.capped(limit, used)
		}
	}
	return m, nil
}

// capped lowers m to a cgroup limit of which used bytes are in use.
func (m Memory) capped(limit, used int64) Memory {
	if limit <= 0 || limit >= m.Total {
		return m
	}
	m.Total = limit
	m.Available = min(m.Available, max(limit-used, 0))
	return m
}

func parseMeminfo(b []byte) (Memory, error) {
	var m Memory
	found := 0
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "MemTotal" && name != "MemAvailable" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("read memory: /proc/meminfo: %s: want \"N kB\", got %q", name, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return Memory{}, fmt.Errorf("read memory: /proc/meminfo: %s: %q is not a size", name, f[0])
		}
		if name == "MemTotal" {
			m.Total = kb << 10
		} else {
			m.Available = kb << 10
		}
		found++
	}
	if found != 2 {
		return Memory{}, errors.New("read memory: /proc/meminfo has no MemTotal or no MemAvailable")
	}
	return m, nil
}

// cgroupLimit is the memory limit and usage of the cgroup named in
// procCgroup (/proc/self/cgroup), under root; ok is false without a limit.
func cgroupLimit(root string, procCgroup []byte) (limit, used int64, ok bool) {
	for _, line := range strings.Split(strings.TrimSpace(string(procCgroup)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var dir, limitFile, usageFile string
		switch {
		case f[0] == "0" && f[1] == "": // v2
			dir, limitFile, usageFile = filepath.Join(root, f[2]), "memory.max", "memory.current"
		case strings.Contains(","+f[1]+",", ",memory,"): // v1
			dir, limitFile, usageFile = filepath.Join(root, "memory", f[2]), "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		l, lok := readInt(filepath.Join(dir, limitFile))
		u, uok := readInt(filepath.Join(dir, usageFile))
		// v1 says "no limit" with a huge number, v2 with "max" (not a number).
		if lok && uok && l < 1<<60 {
			return l, u, true
		}
	}
	return 0, 0, false
}

func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}
