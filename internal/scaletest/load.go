package scaletest

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// DuringRestart calls op in workers loops (op(worker, i), i counting
// each worker's calls) from before a restart of service ("s3" or "pg")
// until a second after it, and returns how many calls succeeded and the
// errors of those that failed.
func DuringRestart(t testing.TB, service string, workers int, op func(worker, i int) error) (ok int, errs []error) {
	t.Helper()
	return While(func() {
		time.Sleep(300 * time.Millisecond)
		Services(t, "restart", service)
		time.Sleep(time.Second)
	}, workers, op)
}

// While calls op in workers loops (op(worker, i), i counting each
// worker's calls) until during returns, and returns how many calls
// succeeded and the errors of those that failed.
func While(during func(), workers int, op func(worker, i int) error) (ok int, errs []error) {
	stop := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := op(w, i)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	during()
	close(stop)
	wg.Wait()
	return ok, errs
}

// Parallel calls op(0) … op(n-1), workers at a time, and returns how
// long that took; errors are the test's.
func Parallel(t testing.TB, n, workers int, op func(i int) error) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := op(i); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(start)
}

// Asked is the number in the environment variable name, which
// scripts/bench-scale sets to run one of its measurements; unset (or 0),
// the test skips: a measurement is not a test.
func Asked(t testing.TB, name string) int {
	t.Helper()
	n, _ := strconv.Atoi(os.Getenv(name))
	if n <= 0 {
		t.Skipf("set %s to run (scripts/bench-scale)", name)
	}
	return n
}
