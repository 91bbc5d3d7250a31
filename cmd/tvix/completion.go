package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts are urfave/cli's (autocomplete/ in its
// repository, not in the Go package), with PROG fixed to tvix: they ask
// the binary itself for completions through --generate-bash-completion,
// so they follow the commands and flags without being regenerated.
const bashCompletion = `# bash completion for tvix; source it or put it in /etc/bash_completion.d/tvix
_tvix_bash_autocomplete() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur opts base words cword
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if declare -F _init_completion >/dev/null 2>&1; then
      _init_completion -n "=:" || return
    else
      words=("${COMP_WORDS[@]}")
      cword=$COMP_CWORD
    fi
    words=("${words[@]:0:$cword}")
    if [[ "$cur" == "-"* ]]; then
      requestComp="${words[*]} ${cur} --generate-bash-completion"
    else
      requestComp="${words[*]} --generate-bash-completion"
    fi
    opts=$(eval "${requestComp}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${opts}" -- ${cur}))
    return 0
  fi
}
complete -o bashdefault -o default -o nospace -F _tvix_bash_autocomplete tvix
`

const zshCompletion = `#compdef tvix
# zsh completion for tvix; put it in a directory of $fpath as _tvix
_tvix() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _tvix tvix
`

func completionCommands() []*cli.Command {
	return []*cli.Command{{
		Name:      "completion",
		Usage:     "print a shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: source <(tvix completion bash), or save it as /etc/bash_completion.d/tvix\n" +
			"zsh:  tvix completion zsh > \"${fpath[1]}/_tvix\"\n" +
			"fish: tvix completion fish > ~/.config/fish/completions/tvix.fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("completion: want one shell: bash, zsh or fish", 2)
			}
			switch sh := c.Args().First(); sh {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("generate fish completion: %w", err)
				}
				fmt.Fprint(c.App.Writer, s)
			default:
				return cli.Exit(fmt.Sprintf("completion: unknown shell %q: want bash, zsh or fish", sh), 2)
			}
			return nil
		},
	}, {
		Name:        "man",
		Usage:       "print the man page (roff), generated from the same definitions as --help",
		Description: "man <(tvix man), or: tvix man > /usr/local/share/man/man1/tvix.1",
		Action: func(c *cli.Context) error {
			s, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("generate man page: %w", err)
			}
			fmt.Fprint(c.App.Writer, s)
			return nil
		},
	}}
}
