package main

import (
	"testing"

	"github.com/urfave/cli/v2"
)

// The chunk cache flag: not given is narbridge's default (0), 0 is none
// (-1), a size is that many MiB.
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
		app := &cli.App{Flags: []cli.Flag{chunkCacheFlag("chunk-cache-mib")}, Action: func(ctx *cli.Context) error {
			got = chunkCache(ctx, "chunk-cache-mib")
			return nil
		}}
		if err := app.Run(append([]string{"tvix"}, c.args...)); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%q: %d, want %d", c.args, got, c.want)
		}
	}
}
