package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/refscan"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Tools for NAR files and narinfos that need no store: the counterparts of
// nix-store --dump/--restore's format side, nix-hash, and the binary cache
// key commands.
func narCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:  "nar",
		Usage: "NAR archive tools (no store involved)",
		Subcommands: []*cli.Command{
			{
				Name: "dump", Usage: "write the NAR of a filesystem path to stdout, like nix-store --dump", ArgsUsage: "PATH",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("usage: tvix nar dump PATH", 2)
					}
					w := bufio.NewWriterSize(os.Stdout, 1<<20)
					if err := nar.DumpPath(w, c.Args().First()); err != nil {
						return err
					}
					return w.Flush()
				},
			},
			{
				Name: "hash", Usage: "print the sha256 of the NAR of each PATH, like nix-hash --type sha256 --base32", ArgsUsage: "PATH...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Value: "nix32", Usage: "nix32, base16, base64 or sri"},
				},
				Action: narHash,
			},
			{
				Name: "ls", Usage: "check the NAR on stdin and list its entries (type, size, path)",
				Action: func(c *cli.Context) error {
					r := nar.NewReader(os.Stdin)
					out := bufio.NewWriter(os.Stdout)
					defer out.Flush()
					for {
						n, err := r.Next()
						if err == io.EOF {
							return nil
						}
						if err != nil {
							return err
						}
						p := "/" + n.Path()
						switch n.Kind {
						case nar.KindFile:
							x := "-"
							if n.Executable {
								x = "x"
							}
							fmt.Fprintf(out, "file %s %12d %s\n", x, n.Size, p)
						case nar.KindSymlink:
							fmt.Fprintf(out, "link - %12s %s -> %s\n", "", p, n.Target)
						case nar.KindDirectory:
							fmt.Fprintf(out, "dir  - %12s %s\n", "", p)
						}
					}
				},
			},
			{
				Name: "refs", Usage: "print which CANDIDATE store paths the NAR on stdin refers to (as Nix scans references)",
				ArgsUsage: "CANDIDATE...",
				Action: func(c *cli.Context) error {
					var cands []storepath.StorePath
					for _, a := range c.Args().Slice() {
						p, err := storepath.Parse(a)
						if err != nil {
							return err
						}
						cands = append(cands, p)
					}
					s := refscan.New(cands)
					if _, err := io.Copy(s, os.Stdin); err != nil {
						return err
					}
					for _, p := range s.Found() {
						fmt.Println(p)
					}
					return nil
				},
			},
		},
	})
	cmds = append(cmds, &cli.Command{
		Name:  "narinfo",
		Usage: "binary cache narinfo tools: keys, signing, verification",
		Subcommands: []*cli.Command{
			{
				Name: "generate-key", Usage: "write a new signing key pair, like nix-store --generate-binary-cache-key",
				ArgsUsage: "NAME SECRET-KEY-FILE PUBLIC-KEY-FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 3 {
						return cli.Exit("usage: tvix narinfo generate-key NAME SECRET-KEY-FILE PUBLIC-KEY-FILE", 2)
					}
					sk, pk, err := narinfo.GenerateKey(c.Args().Get(0), nil)
					if err != nil {
						return err
					}
					if err := os.WriteFile(c.Args().Get(1), []byte(sk.String()), 0o600); err != nil {
						return err
					}
					return os.WriteFile(c.Args().Get(2), []byte(pk.String()), 0o644)
				},
			},
			{
				Name: "sign", Usage: "read a narinfo on stdin, add a signature, print it",
				Flags: []cli.Flag{&cli.StringFlag{Name: "key-file", Required: true, Usage: "secret key `FILE` (name:base64)"}},
				Action: func(c *cli.Context) error {
					b, err := os.ReadFile(c.String("key-file"))
					if err != nil {
						return err
					}
					sk, err := narinfo.ParseSecretKey(string(b))
					if err != nil {
						return err
					}
					ni, err := narinfo.Parse(os.Stdin)
					if err != nil {
						return err
					}
					ni.Sign(sk)
					fmt.Print(ni.String())
					return nil
				},
			},
			{
				Name: "verify", Usage: "check the narinfo on stdin against trusted keys; exit 1 unless one signature is valid",
				Flags: []cli.Flag{&cli.StringSliceFlag{Name: "trusted-public-key", Aliases: []string{"k"}, Required: true, Usage: "`name:base64` (repeatable)"}},
				Action: func(c *cli.Context) error {
					var keys []narinfo.PublicKey
					for _, s := range c.StringSlice("trusted-public-key") {
						for _, f := range strings.Fields(s) {
							k, err := narinfo.ParsePublicKey(f)
							if err != nil {
								return err
							}
							keys = append(keys, k)
						}
					}
					ni, err := narinfo.Parse(os.Stdin)
					if err != nil {
						return err
					}
					ok := ni.Verify(keys)
					if len(ok) == 0 {
						return cli.Exit(fmt.Sprintf("%s: no valid signature by a trusted key", ni.StorePath), 1)
					}
					fmt.Printf("%s: signed by %s\n", ni.StorePath, strings.Join(ok, ", "))
					return nil
				},
			},
		},
	})
	return cmds
}

func narHash(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("usage: tvix nar hash PATH...", 2)
	}
	for _, p := range c.Args().Slice() {
		h := sha256.New()
		if err := nar.DumpPath(h, p); err != nil {
			return err
		}
		hh := nixhash.Hash{Algo: nixhash.SHA256, Digest: h.Sum(nil)}
		switch c.String("format") {
		case "nix32":
			fmt.Println(hh.Nix32())
		case "base16":
			fmt.Println(hh.Hex())
		case "base64":
			fmt.Println(hh.Base64())
		case "sri":
			fmt.Println(hh.SRI())
		default:
			return cli.Exit(fmt.Sprintf("--format %q: want nix32, base16, base64 or sri", c.String("format")), 2)
		}
	}
	return nil
}
