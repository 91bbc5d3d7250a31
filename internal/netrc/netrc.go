package netrc

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"strings"
)

// Entry is one machine's credentials.
type Entry struct{ Login, Password string }

// Lookup finds the credentials for host in a netrc file (machine /
// default entries, login, password), as Nix's netrc-file setting does.
// A missing file is not an error.
func Lookup(path, host string) (Entry, error) {
	if path == "" {
		return Entry{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, nil
	}
	if err != nil {
		return Entry{}, err
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
		return Entry{}, err
	}
	var found, def Entry
	var cur *Entry
	for i := 0; i < len(toks); i++ {
		switch toks[i] {
		case "machine":
			cur = nil
			if i+1 < len(toks) {
				i++
				if toks[i] == host && found.Login == "" {
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
				cur.Login = toks[i]
			case "password":
				cur.Password = toks[i]
			}
		}
	}
	if found.Login != "" {
		return found, nil
	}
	return def, nil
}
