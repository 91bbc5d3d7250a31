package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves the flags typed after a command's positional
// arguments in front of them. urfave/cli v2 parses with Go's flag
// package, which stops at the first positional argument, so
// `tvix mount /mnt/store --list-root` would otherwise see two arguments.
// Only leaf commands that parse their own flags are reordered; everything
// after a "--" stays where it is, and a "--" is put before the
// positionals so one that starts with "-" is not taken for a flag.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		// urfave/cli looks for the completion request at the very end.
		return args
	}
	if h := helpPath(app, args); h != nil {
		return h
	}
	out := []string{args[0]}
	rest := args[1:]
	cmds := app.Commands
	flags := app.Flags
	var cmd *cli.Command
	for len(rest) > 0 {
		a := rest[0]
		if a == "--" {
			return append(out, rest...)
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			n := flagArgs(flags, a)
			if n > len(rest) {
				n = len(rest)
			}
			out = append(out, rest[:n]...)
			rest = rest[n:]
			continue
		}
		next := findCommand(cmds, a)
		if next == nil {
			break
		}
		cmd = next
		out = append(out, a)
		rest = rest[1:]
		cmds, flags = cmd.Subcommands, cmd.Flags
		if len(cmds) == 0 {
			break
		}
	}
	if cmd == nil || len(cmd.Subcommands) > 0 || cmd.SkipFlagParsing || len(rest) == 0 {
		return append(out, rest...)
	}
	var positional, after []string
	dashes := false
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			after, dashes = rest[i+1:], true
			i = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			n := flagArgs(cmd.Flags, a)
			if i+n > len(rest) {
				n = len(rest) - i
			}
			out = append(out, rest[i:i+n]...)
			i += n - 1
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) > 0 || dashes {
		out = append(out, "--")
	}
	return append(append(out, positional...), after...)
}

// flagArgs is how many arguments the flag arg starts: 2 for a flag that
// takes a value given separately, else 1 (booleans, --name=value, and
// unknown flags, which the parser then reports).
func flagArgs(flags []cli.Flag, arg string) int {
	name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	if hasValue {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				return 1
			}
			return 2
		}
	}
	return 1
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// helpPath turns `tvix help store import` into `tvix store import --help`:
// urfave/cli's help command only looks one level down and would show the
// help of store.
func helpPath(app *cli.App, args []string) []string {
	if len(args) < 4 || args[1] != "help" {
		return nil
	}
	cmds := app.Commands
	for _, name := range args[2:] {
		c := findCommand(cmds, name)
		if c == nil {
			return nil
		}
		cmds = c.Subcommands
	}
	return append(append([]string{args[0]}, args[2:]...), "--help")
}
