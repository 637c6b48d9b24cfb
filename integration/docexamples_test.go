package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/lab"
	"github.com/mooring-dev/mooring/internal/testenv"
)

// The convention the docs follow (README.md says it): a ```sh block is an
// example that runs as written and TestDocExamples runs it; shell text
// that cannot run in the lab is in another fence right after a line that
// starts with notRunMarker and gives the reason.
const notRunMarker = "Not run by the tests:"

// exampleCommands are the programs a ```sh block may run.
var exampleCommands = []string{"podman", "docker", "runc", "ctr", "mooring-runtime", "mooring"}

// docBlock is one fenced block of a Markdown file.
type docBlock struct {
	file, lang, text, before string // before: the last text line above the fence
	line                     int
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// docBlocks reads the fenced blocks of README.md and docs/*.md.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	root := testenv.RepoRoot()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var out []docBlock
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		var cur *docBlock
		before := ""
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case cur == nil && strings.HasPrefix(line, "```"):
				cur = &docBlock{file: rel, line: n, lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), before: before}
			case cur != nil && strings.TrimSpace(line) == "```":
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				cur.text += line + "\n"
			case strings.TrimSpace(line) != "":
				before = line
			}
		}
	}
	return out
}

// commandsOf returns the program of each command line of a shell block
// (comments and blank lines skipped, continued lines joined).
func commandsOf(text string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			out = append(out, f[0])
		}
	}
	return out
}

// TestDocExamplesAreMarked checks the convention: ```sh blocks run only
// the example programs, and any other block that shows one of them says
// why it is not run.
func TestDocExamplesAreMarked(t *testing.T) {
	n := 0
	for _, b := range docBlocks(t) {
		cmds := commandsOf(b.text)
		if b.lang == "sh" {
			n++
			for _, c := range cmds {
				if !slices.Contains(exampleCommands, c) {
					t.Errorf("%s: a ```sh block runs %q: the tests run every ```sh block; use another fence for what they cannot run", b, c)
				}
			}
			continue
		}
		if !slices.Contains([]string{"", "text", "shell", "bash"}, b.lang) {
			continue // config files (toml, yaml, json, hcl) and console transcripts
		}
		for _, c := range cmds {
			if slices.Contains(exampleCommands, c) && !strings.HasPrefix(b.before, notRunMarker) {
				t.Errorf("%s: a ```%s block runs %s: make it ```sh (run by TestDocExamples) or say above it %q and why", b, b.lang, c, notRunMarker)
			}
		}
	}
	if n == 0 {
		t.Fatal("no ```sh blocks found")
	}
}

var (
	// Substituted in examples: images the lab has no copy of, and sizes
	// (the scratch pool allows 1Gi).
	exampleImage = regexp.MustCompile(`(\s)(busybox|postgres)(\s|$)`)
	exampleSize  = regexp.MustCompile(`size: [0-9]+[A-Za-z]*`)
	exampleName  = regexp.MustCompile(`name: ([a-z0-9][a-z0-9-]*)`)
)

// TestDocExamples runs every ```sh block of README.md and docs/ as
// written on a host where `make install` ran (into a DESTDIR, made visible
// at the real paths in a private mount namespace, the scratch config as
// /etc/mooring/config.toml), against podman 4.3 with its default hooks
// dir, docker 20.10 with mooring-runtime registered as "mooring", and
// runc. Only image names and sizes are substituted. Each block must exit
// 0, and each volume it names must exist and be formatted afterwards
// (the container got it).
func TestDocExamples(t *testing.T) {
	bins := lab.Binaries(t)
	s := lab.NewScratch(t)
	s.WriteConfig("allow_env_requests = true\n")
	dest, _, _ := lab.InstallOver(t, s)
	installed := lab.AsInstalled(t, dest, installedDirs...)

	p := lab.NewPodman(t, lab.Runc(t), "")
	d := lab.NewDockerd(t, bins.Runtime, s.Env())
	const image = "mooring-example:lab"
	importWithCmd(t, p.Env(), "podman", image)
	importWithCmd(t, []string{"DOCKER_HOST=unix://" + filepath.Join(d.Dir, "docker.sock")}, "/usr/bin/docker", image)

	// The plain shim example runs ./mybundle from its directory.
	work := t.TempDir()
	b := lab.NewBundle(t, lab.Runc(t), lab.Rootfs(t), "sh", "-c", "echo plain > /data/f")
	b.Annotate("volumes.mooring.dev", "[{name: plain, target: /data, size: 64Mi}]")
	if err := os.Symlink(b.Dir, filepath.Join(work, "mybundle")); err != nil {
		t.Fatal(err)
	}
	// docker is Debian's 20.10 client, the one of the lab's daemon.
	bin := t.TempDir()
	if err := os.Symlink("/usr/bin/docker", filepath.Join(bin, "docker")); err != nil {
		t.Fatal(err)
	}
	env := append(p.Env(), "DOCKER_HOST=unix://"+filepath.Join(d.Dir, "docker.sock"),
		"PATH="+bin+":/usr/local/bin:"+os.Getenv("PATH"))

	ran := 0
	for _, blk := range docBlocks(t) {
		if blk.lang != "sh" {
			continue
		}
		ran++
		t.Run(strings.ReplaceAll(blk.String(), "/", "_"), func(t *testing.T) {
			script := exampleImage.ReplaceAllString(blk.text, "${1}"+image+"${3}")
			script = exampleSize.ReplaceAllString(script, "size: 64Mi")
			// runc's default root in a tmpfs of the namespace: the host's
			// /run is not written.
			full := "set -e\nmount -t tmpfs mooring-examples /run\ncd " + work + "\n" + script
			stdout, stderr, err := lab.RunCmd(t, 3*time.Minute, env, installed, "sh", "-c", full)
			if err != nil {
				t.Fatalf("%s failed: %v\n%s\nstdout:\n%s\nstderr:\n%s\nlog:\n%s", blk, err, script, stdout, stderr, s.Log())
			}
			for _, m := range exampleName.FindAllStringSubmatch(script, -1) {
				if !formatted(t, bins.Mooring, s, m[1]) {
					t.Errorf("%s: volume %s was not created and formatted: the container did not get it\n%s\nlog:\n%s", blk, m[1], stdout+stderr, s.Log())
				}
			}
			// In the namespace: poststop hooks come from the installed dir.
			lab.RunCmd(t, 2*time.Minute, env, installed, "podman", "rm", "--all", "--force")
			if ids, _, _ := d.Docker("ps", "-aq"); ids != "" {
				d.Docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
			}
			waitForAttachments(t, s, 0)
		})
	}
	if ran == 0 {
		t.Fatal("no ```sh blocks found")
	}
}

// importWithCmd imports the busybox rootfs as image with
// command `true` (examples name images whose command they do not give;
// a shell would wait on podman's open stdin).
func importWithCmd(t *testing.T, env []string, engine, image string) {
	t.Helper()
	cmd := fmt.Sprintf("tar -C %s -c . | %s import --change 'CMD [\"true\"]' - %s", lab.Rootfs(t), engine, image)
	if _, stderr, err := lab.RunCmd(t, 2*time.Minute, env, "sh", "-c", cmd); err != nil {
		t.Fatalf("%s import: %v\n%s", engine, err, stderr)
	}
}

// formatted reports whether the scratch journal has the volume name and
// it has been formatted (first use happened).
func formatted(t *testing.T, mooring string, s *lab.Scratch, name string) bool {
	t.Helper()
	stdout, stderr, err := lab.RunCmd(t, time.Minute, s.Env(), mooring, "--json", "volume", "ls")
	if err != nil {
		t.Fatalf("mooring volume ls: %v\n%s", err, stderr)
	}
	var vols []volumeSummary
	if err := json.Unmarshal([]byte(stdout), &vols); err != nil {
		t.Fatalf("mooring volume ls --json: %v\n%s", err, stdout)
	}
	return slices.ContainsFunc(vols, func(v volumeSummary) bool { return v.Name == name && v.Formatted })
}

// volumeSummary is what formatted reads of `mooring --json volume ls`.
type volumeSummary struct {
	Name      string `json:"name"`
	Formatted bool   `json:"formatted"`
}
