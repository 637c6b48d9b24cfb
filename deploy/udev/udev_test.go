package udev

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/config"
	"github.com/mooring-dev/mooring/internal/testenv"
	"github.com/mooring-dev/mooring/volume"
)

// There is no udev on the build machines (no udevd, no udevadm verify), so
// these tests read the rule with a small parser of the udev syntax the
// rule uses and evaluate it on events like the kernel's.

const ruleFile = "10-mooring-loop.rules"

// flags the rule must set on a mooring loop device, and nothing else.
var wantFlags = map[string]string{
	"UDEV_DISABLE_PERSISTENT_STORAGE_RULES_FLAG": "1",
	"DM_UDEV_DISABLE_OTHER_RULES_FLAG":           "1",
	"SYSTEMD_READY":                              "0",
	"UDISKS_IGNORE":                              "1",
}

// pair is one KEY{attr}OP"value" of a rule line.
type pair struct{ key, attr, op, value string }

// line is one rule line, or a LABEL.
type line struct {
	pairs []pair
	label string
}

var pairRE = regexp.MustCompile(`^([A-Z_]+)(?:\{([^}]+)\})?(==|!=|\+=|-=|:=|=)"((?:[^"\\]|\\.)*)"$`)

// parse reads rules: comments, blank lines and comma-separated pairs.
func parse(text string) ([]line, error) {
	var out []line
	for n, raw := range strings.Split(text, "\n") {
		s := strings.TrimSpace(raw)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if strings.HasSuffix(s, "\\") {
			return nil, fmt.Errorf("line %d: continuation lines are not used here", n+1)
		}
		var l line
		for _, f := range strings.Split(s, ", ") {
			m := pairRE.FindStringSubmatch(strings.TrimSpace(f))
			if m == nil {
				return nil, fmt.Errorf("line %d: %q is not KEY{attr}OP\"value\"", n+1, f)
			}
			p := pair{key: m[1], attr: m[2], op: m[3], value: m[4]}
			if err := checkPair(p); err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			if p.key == "LABEL" {
				l.label = p.value
			}
			l.pairs = append(l.pairs, p)
		}
		out = append(out, l)
	}
	return out, nil
}

// checkPair knows the keys this rule may use and their operators.
func checkPair(p pair) error {
	match := p.op == "==" || p.op == "!="
	switch p.key {
	case "ACTION", "SUBSYSTEM", "KERNEL":
		if !match || p.attr != "" {
			return fmt.Errorf("%s%s: only == and != without an attribute", p.key, p.op)
		}
	case "ATTR":
		if !match || p.attr == "" {
			return fmt.Errorf("ATTR%s: a match on an attribute", p.op)
		}
	case "ENV":
		if p.attr == "" || p.op != "=" && !match {
			return fmt.Errorf("ENV{%s}%s: assignment or match", p.attr, p.op)
		}
	case "GOTO", "LABEL":
		if p.op != "=" || p.value == "" {
			return fmt.Errorf("%s%s: needs = and a name", p.key, p.op)
		}
	default:
		return fmt.Errorf("key %s is not used by this rule", p.key)
	}
	return nil
}

// glob matches like udev: fnmatch without FNM_PATHNAME ("*" crosses "/"),
// with "|" separating alternatives.
func glob(pattern, s string) bool {
	for _, alt := range strings.Split(pattern, "|") {
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(alt); i++ {
			switch c := alt[i]; c {
			case '*':
				re.WriteString(".*")
			case '?':
				re.WriteString(".")
			case '[':
				j := strings.IndexByte(alt[i:], ']')
				re.WriteString(alt[i : i+j+1])
				i += j
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		if regexp.MustCompile(re.String()).MatchString(s) {
			return true
		}
	}
	return false
}

// event is what udev knows of a device when it runs the rules.
type event struct {
	action, subsystem, kernel string
	attrs                     map[string]string // sysfs attributes, as read
}

// run evaluates the rules on ev like udev: a line applies when every match
// holds; GOTO jumps forward to its LABEL. It returns the ENV assignments.
func run(t *testing.T, rules []line, ev event) map[string]string {
	t.Helper()
	env := map[string]string{}
	for i := 0; i < len(rules); i++ {
		l := rules[i]
		if l.label != "" {
			continue
		}
		applies := true
		for _, p := range l.pairs {
			var have string
			var ok bool
			switch p.key {
			case "ACTION":
				have, ok = ev.action, true
			case "SUBSYSTEM":
				have, ok = ev.subsystem, true
			case "KERNEL":
				have, ok = ev.kernel, true
			case "ATTR":
				have, ok = ev.attrs[p.attr]
				have = strings.TrimRight(have, " \n") // udev strips trailing whitespace
			case "ENV":
				if p.op == "=" {
					continue
				}
				have, ok = env[p.attr]
			default:
				continue
			}
			if p.op != "==" && p.op != "!=" {
				continue
			}
			// A missing attribute matches nothing, so != holds.
			if (ok && glob(p.value, have)) != (p.op == "==") {
				applies = false
				break
			}
		}
		if !applies {
			continue
		}
		for _, p := range l.pairs {
			switch {
			case p.key == "ENV" && p.op == "=":
				env[p.attr] = p.value
			case p.key == "GOTO":
				j := i + 1
				for j < len(rules) && rules[j].label != p.value {
					j++
				}
				i = j
			}
		}
	}
	return env
}

func readRules(t *testing.T) []line {
	t.Helper()
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := parse(string(b))
	if err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	labels := map[string]bool{}
	for _, l := range rules {
		if l.label != "" {
			labels[l.label] = true
		}
	}
	for _, l := range rules {
		for _, p := range l.pairs {
			if p.key == "GOTO" && !labels[p.value] {
				t.Fatalf("GOTO %q has no LABEL", p.value)
			}
		}
	}
	return rules
}

func loopEvent(action, backing string) event {
	ev := event{action: action, subsystem: "block", kernel: "loop7", attrs: map[string]string{}}
	if backing != "" {
		ev.attrs["loop/backing_file"] = backing + "\n"
	}
	return ev
}

func TestRuleMatchesOnlyMooringLoops(t *testing.T) {
	rules := readRules(t)
	for _, tc := range []struct {
		name string
		ev   event
		want bool
	}{
		{"mooring image in the default pool", loopEvent("change", "/var/lib/mooring/pools/default/v0123456789abcdef.img"), true},
		{"mooring image in a pool directory of its own", loopEvent("change", "/srv/fast pool/v00ff00ff00ff00ff.img"), true},
		{"watch event after a write", loopEvent("change", "/var/lib/mooring/pools/default/vfedcba9876543210.img"), true},
		{"add before the backing file is set", loopEvent("add", ""), false},
		{"add at coldplug (udevadm trigger)", loopEvent("add", "/var/lib/mooring/pools/default/v0123456789abcdef.img"), true},
		{"remove", loopEvent("remove", "/var/lib/mooring/pools/default/v0123456789abcdef.img"), false},
		{"someone else's image", loopEvent("change", "/home/u/disk.img"), false},
		{"a name one digit short", loopEvent("change", "/var/lib/mooring/pools/default/v0123456789abcde.img"), false},
		{"upper-case hex", loopEvent("change", "/x/v0123456789ABCDEF.img"), false},
		{"a mooring name as a directory", loopEvent("change", "/x/v0123456789abcdef.img/disk"), false},
		{"a disk", event{action: "change", subsystem: "block", kernel: "sda", attrs: map[string]string{}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := run(t, rules, tc.ev)
			if !tc.want {
				if len(env) != 0 {
					t.Fatalf("set %v on a device that is not mooring's", env)
				}
				return
			}
			if len(env) != len(wantFlags) {
				t.Fatalf("set %v, want %v", env, wantFlags)
			}
			for k, v := range wantFlags {
				if env[k] != v {
					t.Fatalf("ENV{%s} = %q, want %q (all: %v)", k, env[k], v, env)
				}
			}
		})
	}
}

// TestRuleMatchesTheKernelsBackingFile stages a volume mooring creates
// and runs the rule on the backing_file the kernel shows in sysfs for its
// loop device: the rule follows the real image name.
func TestRuleMatchesTheKernelsBackingFile(t *testing.T) {
	testenv.RequireRoot(t)
	_, err := os.Stat("/dev/loop-control")
	testenv.Require(t, err == nil, "/dev/loop-control")
	testenv.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
state_dir = %q
run_dir = %q
[pools.default]
driver = "loop"
default_size = "64Mi"
max_size = "64Mi"
default_fs = "ext4"
create_on_demand = true
tenants = ["*"]
`, filepath.Join(dir, "state"), filepath.Join(dir, "run"))))
	if err != nil {
		t.Fatal(err)
	}
	m, err := volume.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	owner := volume.Owner{ID: "udevtest", Tenant: "default", Frontend: "test"}
	if _, err := m.Acquire(context.Background(), owner, []volume.Request{{Name: "u", Target: "/u"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Release(context.Background(), owner); err != nil {
			t.Error(err)
		}
	})
	atts, err := m.Attachments()
	if err != nil || len(atts) != 1 {
		t.Fatalf("attachments: %+v %v", atts, err)
	}
	name := filepath.Base(atts[0].Device)
	backing, err := os.ReadFile(filepath.Join("/sys/block", name, "loop/backing_file"))
	if err != nil {
		t.Fatal(err)
	}
	ev := event{action: "change", subsystem: "block", kernel: name, attrs: map[string]string{"loop/backing_file": string(backing)}}
	if env := run(t, readRules(t), ev); env["UDEV_DISABLE_PERSISTENT_STORAGE_RULES_FLAG"] != "1" {
		t.Fatalf("the rule does not match %s backed by %q: %v", name, backing, env)
	}
}

func TestParserRefusesWhatUdevWould(t *testing.T) {
	for _, bad := range []string{`KERNEL=="loop*" GOTO="x"`, `ATTR=="x"`, `ENV{A}+="1"`, `RUN+="/bin/sh"`, `KERNEL=='loop*'`, `KERNEL=="loop*", \`} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
