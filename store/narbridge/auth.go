package narbridge

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

// Credentials are the users allowed to upload, read from a file of
// `user:password` lines. Nix sends them as HTTP Basic (from its
// netrc-file); other clients may send the password as a Bearer token.
type Credentials struct {
	users []credential
}

type credential struct {
	user string
	// Hashes, so every comparison is of 32 bytes and takes the same time
	// whatever the lengths of the secret and the guess.
	userSum, passSum [32]byte
}

// LoadCredentials reads a credentials file.
func LoadCredentials(file string) (*Credentials, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ParseCredentials(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// ParseCredentials reads `user:password` lines; blank lines and lines
// starting with # are skipped. A file naming nobody is refused: it would
// turn uploads on for no one, which is surely not what was meant.
func ParseCredentials(r io.Reader) (*Credentials, error) {
	c := &Credentials{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("line %d: want user:password", n)
		}
		c.users = append(c.users, credential{user: user, userSum: sha256.Sum256([]byte(user)), passSum: sha256.Sum256([]byte(pass))})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(c.users) == 0 {
		return nil, fmt.Errorf("no user:password lines")
	}
	return c, nil
}

// check returns the user r authenticates as, or "" if none. Every line is
// compared, so the time taken does not tell which (or whether one) matched.
func (c *Credentials) check(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	scheme, value, _ := strings.Cut(auth, " ")
	var user, pass string
	bearer := false
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
		if err != nil {
			return ""
		}
		var ok bool
		if user, pass, ok = strings.Cut(string(raw), ":"); !ok {
			return ""
		}
	case "bearer":
		pass, bearer = strings.TrimSpace(value), true
	default:
		return ""
	}
	us, ps := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	found := ""
	for _, u := range c.users {
		userOK := 1
		if !bearer {
			userOK = subtle.ConstantTimeCompare(u.userSum[:], us[:])
		}
		if userOK&subtle.ConstantTimeCompare(u.passSum[:], ps[:]) == 1 && found == "" {
			found = u.user
		}
	}
	return found
}

// uploader says who r uploads as, the key that ties a narinfo to the NARs
// it may commit: "user:NAME" for credentials, "addr:IP" for anonymous
// uploads. ok is false when r may not upload at all; the response has
// then been written.
func (h *Handler) uploader(w http.ResponseWriter, r *http.Request) (string, bool) {
	switch {
	case h.opts.ReadOnly:
		http.Error(w, "this cache is read-only", http.StatusForbidden)
		return "", false
	case h.opts.UploadCredentials != nil:
		if u := h.opts.UploadCredentials.check(r); u != "" {
			return "user:" + u, true
		}
		if h.opts.AllowAnonymousUploads && r.Header.Get("Authorization") == "" {
			return anonymous(r), true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="nar-bridge uploads"`)
		http.Error(w, "uploads need credentials (HTTP Basic from Nix's netrc-file, or a Bearer token)", http.StatusUnauthorized)
		return "", false
	case h.opts.AllowAnonymousUploads:
		return anonymous(r), true
	}
	http.Error(w, "uploads are off: the server was started without --http-upload-auth-file or --http-allow-anonymous-uploads", http.StatusForbidden)
	return "", false
}

// anonymous names an anonymous uploader by its address without the port:
// Nix opens a new connection for the narinfo now and then.
func anonymous(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}
