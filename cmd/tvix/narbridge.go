package main

import (
	"fmt"
	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/daemon"
)

// nar-bridge on its own: the daemon with only the HTTP binary cache.
func narBridgeCommands() []*cli.Command {
	return []*cli.Command{{
		Name:  "nar-bridge",
		Usage: "serve the store as a Nix HTTP binary cache (nix copy --to/--from http://…, substituters)",
		Flags: append(append(serviceFlags(), uploadFlags()...),
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Value: "127.0.0.1:9000", Usage: "listen on `ADDR` (host:port, unix:///path.sock); other machines reach it only if you name an address of theirs, such as 0.0.0.0:9000"},
			&cli.StringFlag{Name: "signing-key-file", Usage: "sign served narinfos with the Nix secret key in `FILE`"},
			&cli.IntFlag{Name: "priority", Value: 39, Usage: "Priority announced in nix-cache-info"},
			&cli.BoolFlag{Name: "read-only", Usage: "refuse uploads (nix copy --to)"},
			chunkCacheFlag("chunk-cache-mib"),
		),
		Action: func(c *cli.Context) error {
			cache, err := chunkCache(c, "chunk-cache-mib") // before the store is opened
			if err != nil {
				return err
			}
			cfg, err := daemonStore(c)
			if err != nil {
				return err
			}
			cfg.HTTP = daemon.HTTPConfig{Listen: c.String("listen"), SigningKeyFile: c.String("signing-key-file"),
				Priority: c.Int("priority"), ReadOnly: c.Bool("read-only"), ChunkCache: cache}
			uploadConfig(c, &cfg)
			return serve(c, cfg)
		},
	}}
}

// chunkCacheFlag bounds the verified chunks nar-bridge keeps in memory.
func chunkCacheFlag(name string) cli.Flag {
	// No Value: the default depends on the machine, and reading it belongs
	// to the command that serves, not to every command's start.
	return &cli.Int64Flag{Name: name, DefaultText: "an eighth of RAM, 256 MiB to 16 GiB",
		Usage: "keep up to `MIB` of verified chunks in memory, so NARs served again are not read from disk and hashed again (0: none); less while the system is short of memory"}
}

// chunkCache is the flag's Options.ChunkCache: 0 (narbridge's default)
// when not given, -1 (none) for 0.
func chunkCache(c *cli.Context, name string) (int64, error) {
	if !c.IsSet(name) {
		return 0, nil
	}
	switch mib := c.Int64(name); {
	case mib < 0 || mib > 1<<30:
		return 0, cli.Exit(fmt.Sprintf("--%s %d: want a size in MiB (0: no cache)", name, mib), 2)
	case mib == 0:
		return -1, nil
	default:
		return mib << 20, nil
	}
}
