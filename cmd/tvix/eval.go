package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chzyer/readline"
	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/eval/evalcli"
	"github.com/urfave/cli/v2"
)

func evalCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:            "instantiate",
		Usage:           "evaluate Nix expressions the way nix-instantiate does (see nix-instantiate --help)",
		ArgsUsage:       "[--eval] [--strict] [--json|--xml] [-E] [-A attr] [--arg n e] [--argstr n s] [-I p] files...",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			return exitErr(evalcli.RunProgram(evalcli.Program{Name: "tvix instantiate", Version: version}, c.Args().Slice(), evalStore(), os.Stdin, os.Stdout, os.Stderr, os.Getenv))
		},
	})
	cmds = append(cmds, &cli.Command{
		Name:            "eval",
		Usage:           "evaluate Nix expressions (tvix instantiate --eval)",
		ArgsUsage:       "[--strict] [--json|--xml] [-E expr | file] [-A attr] ...",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			return exitErr(evalcli.RunProgram(evalcli.Program{Name: "tvix eval", Version: version, EvalMode: true}, c.Args().Slice(), evalStore(), os.Stdin, os.Stdout, os.Stderr, os.Getenv))
		},
	})
	cmds = append(cmds, &cli.Command{
		Name:  "repl",
		Usage: "interactive Nix REPL",
		Flags: []cli.Flag{&cli.StringSliceFlag{Name: "include", Aliases: []string{"I"}, Usage: "add a search path entry"}},
		Action: func(c *cli.Context) error {
			return runRepl(c.StringSlice("include"), c.Args().Slice())
		},
	})
	return cmds
}

func exitErr(code int) error {
	if code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

func runRepl(include, files []string) error {
	ev := eval.New(eval.Options{NixPath: evalcli.NixPath(include, os.Getenv)})
	home, _ := os.UserHomeDir()
	rl, err := readline.NewEx(&readline.Config{Prompt: "nix-repl> ", HistoryFile: filepath.Join(home, ".tvix_repl_history")})
	if err != nil {
		return fmt.Errorf("start readline: %w", err)
	}
	defer rl.Close()
	cwd, _ := os.Getwd()
	r := eval.NewRepl(ev, cwd)
	for _, f := range files {
		if msg := r.Line(":l " + f); msg != "" {
			fmt.Println(msg)
		}
	}
	fmt.Println("Welcome to tvix repl. Type :? for help.")
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil {
			return nil
		}
		if strings.TrimSpace(line) == ":q" {
			return nil
		}
		if out := r.Line(line); out != "" {
			fmt.Println(out)
		}
	}
}
