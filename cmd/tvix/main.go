// Command tvix is the single tvix-go binary: store daemon, mounts, tools and
// the Nix evaluator. It parses flags and calls into the packages; each
// command's flags live in a file of its own.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/boot/guest"
	"github.com/tvix-go/tvix/eval/evalcli"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

func newApp() *cli.App {
	var commands []*cli.Command
	for _, group := range [][]*cli.Command{
		bootCommands(), buildCommands(), castoreCommands(), completionCommands(), daemonCommands(), derivationCommands(), evalCommands(),
		mountCommands(), narCommands(), narBridgeCommands(), nixDaemonCommands(), storeCommands(),
	} {
		commands = append(commands, group...)
	}
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	return &cli.App{
		Name:    "tvix",
		Usage:   "content-addressed Nix store, lazy /nix/store mounts and a Nix evaluator",
		Version: version,
		Description: "Commands that touch the store take --store (or TVIX_STORE): a tvix daemon's socket or a\n" +
			"directory with an embedded store (default " + dataDir() + "); --blob-service-addr,\n" +
			"--directory-service-addr and --path-info-service-addr override it one service at a time.\n" +
			"`tvix help COMMAND [SUBCOMMAND]` explains a command; flags go before or after its arguments.\n" +
			"Shell completion: tvix completion bash|zsh|fish; the man page: tvix man.",
		Commands:             commands,
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"TVIX_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: []string{"TVIX_LOG_FORMAT"}},
		},
		Before: func(c *cli.Context) error { return setupLogging(c.String("log-level"), c.String("log-format")) },
	}
}

// personality lets the binary act as another program when invoked through
// a symlink of that name, so scripts written for Nix run unchanged and a
// static tvix can be a VM's /init. It gets the full argv and returns the
// exit code.
func personality(name string) (func(args []string) int, bool) {
	switch name {
	case "nix-instantiate":
		return func(args []string) int {
			return evalcli.RunProgram(evalcli.Program{Name: "nix-instantiate", Version: version}, args[1:], evalStore(), os.Stdin, os.Stdout, os.Stderr, os.Getenv)
		}, true
	case "init":
		return func([]string) int { return guest.Main() }, true
	}
	return nil, false
}

func setupLogging(level, format string) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
	default:
		return fmt.Errorf("--log-format %q: want text or json", format)
	}
	return nil
}

func main() {
	if p, ok := personality(filepath.Base(os.Args[0])); ok {
		os.Exit(p(os.Args))
	}
	app := newApp()
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintf(os.Stderr, "tvix: %v\n", err)
		os.Exit(exitCode(err))
	}
}

// exitCode lets commands choose their exit status by returning cli.Exit.
func exitCode(err error) int {
	if ec, ok := err.(cli.ExitCoder); ok && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	return 1
}
