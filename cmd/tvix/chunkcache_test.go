package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The chunk cache flag: not given is narbridge's default (0), 0 is none
// (-1), a size is that many MiB; a negative one is refused, naming it.
func TestChunkCacheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, 0},
		{[]string{"--chunk-cache-mib", "0"}, -1},
		{[]string{"--chunk-cache-mib", "100"}, 100 << 20},
	} {
		var got int64
		app := &cli.App{Flags: []cli.Flag{chunkCacheFlag("chunk-cache-mib")}, Action: func(ctx *cli.Context) (err error) {
			got, err = chunkCache(ctx, "chunk-cache-mib")
			return err
		}}
		if err := app.Run(append([]string{"tvix"}, c.args...)); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%q: %d, want %d", c.args, got, c.want)
		}
	}
	var err error
	app := &cli.App{Flags: []cli.Flag{chunkCacheFlag("chunk-cache-mib")}, ExitErrHandler: func(*cli.Context, error) {},
		Action: func(ctx *cli.Context) error {
			_, err = chunkCache(ctx, "chunk-cache-mib")
			return nil
		}}
	if runErr := app.Run([]string{"tvix", "--chunk-cache-mib", "-5"}); runErr != nil {
		t.Fatal(runErr)
	}
	if err == nil || !strings.Contains(err.Error(), "--chunk-cache-mib -5") {
		t.Errorf("a negative size: %v", err)
	}
}

// A bad cache size stops the serving commands before they open (or
// create) a store.
func TestChunkCacheFlagRefusedBeforeStore(t *testing.T) {
	for _, args := range [][]string{
		{"nar-bridge", "--chunk-cache-mib", "-5"},
		{"daemon", "--http-chunk-cache-mib", "-1"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		_, stderr, err := run(t, []string{"XDG_DATA_HOME=" + data}, args...)
		if err == nil || !strings.Contains(stderr, args[1]+" "+args[2]+": want a size in MiB") {
			t.Errorf("%q: %v, %q", args, err, stderr)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("%q: the store's directory was made (%v)", args, err)
		}
	}
}
