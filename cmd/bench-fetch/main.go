// Command bench-fetch fetches a list of URLs over a fixed number of
// connections and prints what it got and how fast, as one JSON object:
// the client of scripts/bench-narbridge, in the shape of the binary cache
// shootout (every NAR of a closure, 1 and 16 connections). It reads bodies
// into one large buffer per connection and throws them away, so the client
// costs as little as a client can.
//
//	bench-fetch -c 16 [-h2c] [-zstd] [-narinfo BASE] < urls
//
// With -narinfo BASE, the input is store path hash parts: it fetches
// BASE/<hash>.narinfo and prints the NAR URLs the narinfos name, one a
// line, instead of the figures.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Requests int     `json:"requests"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MiBps    float64 `json:"mib_per_s"`
	PerSec   float64 `json:"requests_per_s"`
	Conns    int     `json:"connections"`
	Proto    string  `json:"proto"`
	Encoding string  `json:"content_encoding,omitempty"`
}

func main() {
	conns := flag.Int("c", 1, "connections (each fetches one URL at a time)")
	h2c := flag.Bool("h2c", false, "HTTP/2 over cleartext (prior knowledge); the connections are then streams of one connection")
	zstd := flag.Bool("zstd", false, "send Accept-Encoding: zstd (the body is counted as received)")
	narinfoBase := flag.String("narinfo", "", "fetch BASE/<hash>.narinfo for each input line and print the NAR URLs")
	flag.Parse()
	if err := run(*conns, *h2c, *zstd, *narinfoBase); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fetch:", err)
		os.Exit(1)
	}
}

func run(conns int, h2c, zstd bool, narinfoBase string) error {
	var lines []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read URLs: %w", err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
		WriteBufferSize: 64 << 10, ReadBufferSize: 256 << 10}
	proto := "HTTP/1.1"
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
		proto = "HTTP/2"
	}
	client := &http.Client{Transport: tr}
	if narinfoBase != "" {
		return printNARURLs(client, conns, narinfoBase, lines)
	}
	var total atomic.Int64
	var encoding atomic.Value
	start := time.Now()
	err := parallel(conns, lines, func(buf []byte, u string) error {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if zstd {
			req.Header.Set("Accept-Encoding", "zstd")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		if e := resp.Header.Get("Content-Encoding"); e != "" {
			encoding.Store(e)
		}
		for {
			n, err := resp.Body.Read(buf)
			total.Add(int64(n))
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("GET %s: %w", u, err)
			}
		}
	})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	res := result{Requests: len(lines), Bytes: total.Load(), Seconds: secs, MiBps: float64(total.Load()) / secs / (1 << 20),
		PerSec: float64(len(lines)) / secs, Conns: conns, Proto: proto}
	if e, ok := encoding.Load().(string); ok {
		res.Encoding = e
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// parallel runs do over items on n workers, each with its own buffer,
// stopping at the first error.
func parallel(n int, items []string, do func(buf []byte, item string) error) error {
	work := make(chan string)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	stop := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for it := range work {
				if err := do(buf, it); err != nil {
					once.Do(func() { first = err; close(stop) })
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-stop:
			break feed
		}
	}
	close(work)
	wg.Wait()
	return first
}

func printNARURLs(client *http.Client, conns int, base string, hashes []string) error {
	b, err := url.Parse(strings.TrimSuffix(base, "/") + "/")
	if err != nil {
		return fmt.Errorf("narinfo base: %w", err)
	}
	urls := make([]string, len(hashes))
	index := map[string]int{}
	for i, h := range hashes {
		index[h] = i
	}
	var mu sync.Mutex
	err = parallel(conns, hashes, func(_ []byte, h string) error {
		resp, err := client.Get(b.String() + h + ".narinfo")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("narinfo %s: %s", h, resp.Status)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("narinfo %s: %w", h, err)
		}
		for _, l := range strings.Split(string(body), "\n") {
			if u, ok := strings.CutPrefix(l, "URL: "); ok {
				ref, err := url.Parse(u)
				if err != nil {
					return fmt.Errorf("narinfo %s: URL %q: %w", h, u, err)
				}
				mu.Lock()
				urls[index[h]] = b.ResolveReference(ref).String()
				mu.Unlock()
				return nil
			}
		}
		return fmt.Errorf("narinfo %s has no URL", h)
	})
	if err != nil {
		return err
	}
	for _, u := range urls {
		fmt.Println(u)
	}
	return nil
}
