package nixcache

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"strings"
)

type netrcEntry struct{ login, password string }

// lookupNetrc finds the credentials for host in a netrc file (machine /
// default entries, login, password), as Nix's netrc-file setting does.
// A missing file is not an error.
func lookupNetrc(path, host string) (netrcEntry, error) {
	if path == "" {
		return netrcEntry{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return netrcEntry{}, nil
	}
	if err != nil {
		return netrcEntry{}, err
	}
	defer f.Close()
	var toks []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		toks = append(toks, strings.Fields(line)...)
	}
	if err := sc.Err(); err != nil {
		return netrcEntry{}, err
	}
	var found, def netrcEntry
	var cur *netrcEntry
	for i := 0; i < len(toks); i++ {
		switch toks[i] {
		case "machine":
			cur = nil
			if i+1 < len(toks) {
				i++
				if toks[i] == host && found.login == "" {
					cur = &found
				}
			}
		case "default":
			cur = &def
		case "login", "password", "account":
			if i+1 >= len(toks) {
				break
			}
			i++
			if cur == nil {
				continue
			}
			switch toks[i-1] {
			case "login":
				cur.login = toks[i]
			case "password":
				cur.password = toks[i]
			}
		}
	}
	if found.login != "" {
		return found, nil
	}
	return def, nil
}
