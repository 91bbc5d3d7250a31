package main

import (
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
