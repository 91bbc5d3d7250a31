package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// tvixProc is a long-running tvix command (daemon, mount) a test started.
type tvixProc struct {
	cmd  *exec.Cmd
	log  syncBuffer // its stderr, readable while it runs
	once sync.Once
	err  error
}

// syncBuffer is a bytes.Buffer a process writes while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTvix starts tvix with args and env on top of the test's
// environment; the process is stopped when the test ends, if not before.
func startTvix(t *testing.T, env []string, args ...string) *tvixProc {
	t.Helper()
	p := &tvixProc{cmd: exec.Command(tvixBinary(t), args...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// stop interrupts the process as Ctrl-C does and waits up to 20 s for it
// to exit (then kills it); every call returns the first call's result.
func (p *tvixProc) stop() error {
	p.once.Do(func() {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case p.err = <-done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-done
			p.err = errors.New("did not exit within 20 s of SIGINT")
		}
	})
	return p.err
}

// waitFor waits up to 20 s for path to exist (a socket, a mounted file),
// failing with the process's log.
func (p *tvixProc) waitFor(t *testing.T, path string) {
	t.Helper()
	p.waitForFunc(t, path, func() bool { _, err := os.Stat(path); return err == nil })
}

// waitForFunc waits up to 20 s for ready, failing with the process's log.
func (p *tvixProc) waitForFunc(t *testing.T, what string, ready func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ready() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear; log of tvix %v:\n%s", what, p.cmd.Args[1:], p.log.String())
		}
	}
}

// unmountAtEnd lazily unmounts mp when the test ends, if it is still
// mounted. Called before startTvix, it runs after the process is stopped.
func unmountAtEnd(t *testing.T, mp string) {
	t.Cleanup(func() {
		if isMounted(mp) {
			exec.Command("umount", "-l", mp).Run()
		}
	})
}
