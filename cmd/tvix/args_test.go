package main

import (
	"os"
	"os/exec"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"slices"
	"strings"
	"testing"
)

func TestInterspersedMovesFlagsBeforePositionals(t *testing.T) {
	app := newApp()
	for _, c := range []struct{ in, want string }{
		{"tvix mount /mnt/store --list-root", "tvix mount --list-root -- /mnt/store"},
		{"tvix mount /mnt/store --threads 4 -l", "tvix mount --threads 4 -l -- /mnt/store"},
		{"tvix --log-level debug store import a --flat b --name=x", "tvix --log-level debug store import --flat --name=x -- a b"},
		{"tvix store copy /nix/store/x --from file:///c -A hello", "tvix store copy --from file:///c -A hello -- /nix/store/x"},
		{"tvix boot --run /bin/sh -- -c echo", "tvix boot --run /bin/sh -- -c echo"},
		{"tvix boot -- -c --run", "tvix boot -- -c --run"},
		{"tvix castore ls b3:x sub --blob-service-addr memory://", "tvix castore ls --blob-service-addr memory:// -- b3:x sub"},
		// the evaluator parses nix-instantiate's flags itself, in any order
		{"tvix eval -E 1 --strict", "tvix eval -E 1 --strict"},
		// commands with subcommands (and their help) are left alone
		{"tvix store help import", "tvix store help import"},
		{"tvix help store import", "tvix store import --help"},
		{"tvix help store nosuch", "tvix help store nosuch"},
		{"tvix help mount", "tvix help mount"},
		{"tvix store verify --check-contents", "tvix store verify --check-contents"},
	} {
		if got := strings.Join(interspersed(app, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	if got := interspersed(app, []string{"tvix"}); !slices.Equal(got, []string{"tvix"}) {
		t.Errorf("bare tvix: %q", got)
	}
}

// TestFlagsAfterPositionals runs the README's order end to end: the
// flags given after the arguments take effect.
func TestFlagsAfterPositionals(t *testing.T) {
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	dir := t.TempDir()
	out, stderr, err := run(t, env, "castore", "import", dir, "--blob-service-addr", "memory://", "--directory-service-addr", "memory://")
	if err != nil || !strings.Contains(out, "directory") {
		t.Fatalf("castore import DIR --flags: %q %s %v", out, stderr, err)
	}
	_, stderr, err = run(t, env, "mount", t.TempDir(), "--threads", "-3")
	if err == nil || !strings.Contains(stderr, "--threads -3") {
		t.Fatalf("mount MOUNTPOINT --threads -3: want the flag seen and refused, got %v %q", err, stderr)
	}
}

func TestHelpCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "mount"}, "tvix mount - mount the store"},
		{[]string{"help", "store", "import"}, "tvix store import - add paths"},
		{[]string{"store", "help", "verify"}, "tvix store verify - "},
	} {
		out, stderr, err := run(t, nil, c.args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("tvix %v: %q %s %v; want %q", c.args, out, stderr, err, c.want)
		}
	}
}

// TestEveryFlagHasADescription walks every command: each flag has a
// one-line usage for --help, the man page and completion.
func TestEveryFlagHasADescription(t *testing.T) {
	app := newApp()
	var walk func(path string, flags []cli.Flag, cmds []*cli.Command)
	walk = func(path string, flags []cli.Flag, cmds []*cli.Command) {
		for _, f := range flags {
			u := ""
			if d, ok := f.(cli.DocGenerationFlag); ok {
				u = d.GetUsage()
			}
			if strings.TrimSpace(u) == "" || strings.Contains(u, "\n") {
				t.Errorf("%s --%s: usage %q, want one line", path, f.Names()[0], u)
			}
		}
		for _, c := range cmds {
			if strings.TrimSpace(c.Usage) == "" {
				t.Errorf("%s %s: no usage", path, c.Name)
			}
			walk(path+" "+c.Name, c.Flags, c.Subcommands)
		}
	}
	walk("tvix", app.Flags, app.Commands)
}

// TestCompletionAndMan: the scripts are valid shell and ask the binary,
// which answers with commands and flags; the man page names every command.
func TestCompletionAndMan(t *testing.T) {
	bash, _, err := run(t, nil, "completion", "bash")
	if err != nil || !strings.Contains(bash, "complete -o bashdefault -o default -o nospace -F _tvix_bash_autocomplete tvix") {
		t.Fatalf("completion bash: %v\n%s", err, bash)
	}
	script := filepath.Join(t.TempDir(), "tvix.bash")
	os.WriteFile(script, []byte(bash), 0o644)
	// What bash does on "tvix store im<TAB>" with the script loaded.
	cmd := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(tvix store im); COMP_CWORD=2; _tvix_bash_autocomplete; echo "${COMPREPLY[@]}"`, "bash", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tvixBinary(t))+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "import" {
		t.Errorf("bash completion of 'tvix store im': %q, %v", out, err)
	}
	if out, _, err := run(t, nil, "mount", "--list", "--generate-bash-completion"); err != nil || !strings.Contains(out, "--list-root") {
		t.Errorf("flag completion of mount --list: %q, %v", out, err)
	}
	zsh, _, err := run(t, nil, "completion", "zsh")
	if err != nil || !strings.HasPrefix(zsh, "#compdef tvix") {
		t.Errorf("completion zsh: %v\n%s", err, zsh)
	}
	fish, _, err := run(t, nil, "completion", "fish")
	if err != nil || !strings.Contains(fish, "complete -c tvix") || !strings.Contains(fish, "-l list-root") {
		t.Errorf("completion fish: %v\n%s", err, fish)
	}
	if _, stderr, err := run(t, nil, "completion", "tcsh"); err == nil || !strings.Contains(stderr, `unknown shell "tcsh"`) {
		t.Errorf("completion tcsh: %v %q", err, stderr)
	}
	man, _, err := run(t, nil, "man")
	if err != nil || !strings.HasPrefix(man, ".nh\n.TH tvix 1") {
		t.Fatalf("man: %v\n%.200s", err, man)
	}
	for _, want := range []string{"castore", "import-image", "derivation", "--check-contents", "--store"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}
