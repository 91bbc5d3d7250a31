package main

import (
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
		),
		Action: func(c *cli.Context) error {
			cfg, err := daemonStore(c)
			if err != nil {
				return err
			}
			cfg.HTTP = daemon.HTTPConfig{Listen: c.String("listen"), SigningKeyFile: c.String("signing-key-file"),
				Priority: c.Int("priority"), ReadOnly: c.Bool("read-only")}
			uploadConfig(c, &cfg)
			return serve(c, cfg)
		},
	}}
}
