package annotations

import (
	"reflect"
	"strings"
	"testing"
)

func TestEffective(t *testing.T) {
	ann := map[string]string{
		KeyContainerPrefix + "db": "c",
		KeyPod:                    "p",
		Key:                       "k",
		"volumes.mooring.devx":    "lookalike",
		KeyContainerPrefix:        "empty name",
	}
	for _, tc := range []struct {
		name      string
		ann       map[string]string
		container string
		key, val  string
		ok        bool
	}{
		{"container key wins", ann, "db", KeyContainerPrefix + "db", "c", true},
		{"pod key for other containers", ann, "web", KeyPod, "p", true},
		{"pod key without a container name", ann, "", KeyPod, "p", true},
		{"plain key", map[string]string{Key: "k"}, "web", Key, "k", true},
		{"lookalikes ignored", map[string]string{
			"volumes.mooring.devx": "x", "volumes.mooring.dev/containerX": "x",
			"Volumes.mooring.dev": "x", KeyContainerPrefix: "x", "volumes.mooring.dev/pods": "x",
		}, "", "", "", false},
		{"none", nil, "db", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, v, ok := Effective(tc.ann, tc.container)
			if k != tc.key || v != tc.val || ok != tc.ok {
				t.Fatalf("got %q %q %v", k, v, ok)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        []Volume
	}{
		{"flow", `[{name: pgdata, target: /var/lib/postgresql/data, pool: fast, size: 10Gi, fs: xfs, readOnly: true}]`,
			[]Volume{{Name: "pgdata", Target: "/var/lib/postgresql/data", Pool: "fast", Size: 10 << 30, FS: "xfs", ReadOnly: true}}},
		{"json", `[{"name":"a","target":"/a","size":1048576}]`, []Volume{{Name: "a", Target: "/a", Size: 1 << 20}}},
		{"block", "- name: a\n  target: /a\n- name: b\n  target: /b\n  size: 2G\n",
			[]Volume{{Name: "a", Target: "/a"}, {Name: "b", Target: "/b", Size: 2e9}}},
		{"quoted", `[{name: "1", target: "/data dir"}]`, []Volume{{Name: "1", Target: "/data dir"}}},
		{"from", `[{name: b, target: /b, from: a@monday}]`, []Volume{{Name: "b", Target: "/b", From: "a@monday"}}},
		{"mode block", `[{name: db, target: /data/disk, mode: block, readOnly: true}]`, []Volume{{Name: "db", Target: "/data/disk", Mode: ModeBlock, ReadOnly: true}}},
		{"mode filesystem", `[{name: a, target: /a, mode: filesystem, fs: xfs}]`, []Volume{{Name: "a", Target: "/a", Mode: ModeFilesystem, FS: "xfs"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFromAnnotationsRefuses(t *testing.T) {
	many := "["
	for i := range MaxVolumes + 1 {
		many += "{name: v" + string(rune('a'+i)) + ", target: /v" + string(rune('a'+i)) + "},"
	}
	many += "]"
	for _, tc := range []struct{ name, value, want string }{
		{"malformed yaml", `[{name: a, target: /a`, "not valid YAML"},
		{"not a list", `{name: a, target: /a}`, "want a list of volumes"},
		{"scalar", `data`, "want a list of volumes"},
		{"empty list", `[]`, "no volumes"},
		{"null item", `[null]`, "volume 1: want a map"},
		{"unknown field", `[{name: a, target: /a, access: rw}]`, `volume 1 ("a"): unknown field "access"`},
		{"bad mode", `[{name: a, target: /a, mode: rw}]`, `volume 1 ("a"): mode "rw": must be filesystem or block`},
		{"mode case", `[{name: a, target: /a, mode: Block}]`, `mode "Block"`},
		{"mode not a string", `[{name: a, target: /a, mode: [block]}]`, "mode: must be a string"},
		{"block with fs", `[{name: a, target: /a, mode: block, fs: ext4}]`, `fs "ext4": not with mode block`},
		{"block from snapshot", `[{name: b, target: /b, mode: block, from: a@s}]`, "from: not with mode block"},
		{"block under dev", `[{name: a, target: /dev/vdb, mode: block}]`, "must not be /dev or below it"},
		{"field case", `[{Name: a, target: /a}]`, `unknown field "Name"`},
		{"duplicate field", `[{name: a, name: b, target: /a}]`, "not valid YAML"},
		{"missing name", `[{target: /a}]`, "volume 1: name: missing"},
		{"missing target", `[{name: a}]`, `volume 1 ("a"): target: missing`},
		{"bad name", `[{name: Data_1, target: /a}]`, `name "Data_1": want 1-63 characters`},
		{"long name", `[{name: ` + strings.Repeat("a", 64) + `, target: /a}]`, "want 1-63"},
		{"name not a string", `[{name: [a], target: /a}]`, "name: must be a string"},
		{"relative target", `[{name: a, target: data}]`, `target "data": must be an absolute path`},
		{"dotdot target", `[{name: a, target: /data/../../etc}]`, "must not contain .."},
		{"unclean target", `[{name: a, target: /data/}]`, "must be a clean path"},
		{"double slash", `[{name: a, target: //data}]`, "must be a clean path"},
		{"root target", `[{name: a, target: /}]`, `must not be the container's root`},
		{"proc", `[{name: a, target: /proc}]`, "must not be /proc or below it"},
		{"below sys", `[{name: a, target: /sys/fs/cgroup}]`, "must not be /sys or below it"},
		{"dev", `[{name: a, target: /dev/shm}]`, "must not be /dev or below it"},
		{"control char", "[{name: a, target: \"/a\\x01\"}]", "control or invisible character U+00"},
		{"raw control char", "[{name: a, target: /a\x07}]", "control or invisible character U+00"},
		{"bidi override in target", "[{name: a, target: \"/data\\u202egpj.exe\"}]", "U+202E"},
		{"raw bidi in target", "[{name: a, target: /data\u202egpj}]", "U+202E"},
		{"bidi isolate in target", "[{name: a, target: \"/a\\u2066b\"}]", "U+2066"},
		{"zero width space in target", "[{name: a, target: \"/a\\u200bb\"}]", "U+200B"},
		{"bidi in name", "[{name: \"a\\u202e\", target: /a}]", "name"},
		{"second document", "[{name: a, target: /a}]\n---\n[{name: b, target: /proc}]", "more than one YAML document"},
		{"empty second document", "[{name: a, target: /a}]\n---\n", "more than one YAML document"},
		{"bad pool", `[{name: a, target: /a, pool: ../x}]`, `pool "../x"`},
		{"zero size", `[{name: a, target: /a, size: 0}]`, "size: must be more than zero"},
		{"negative size", `[{name: a, target: /a, size: -1}]`, "size"},
		{"fraction", `[{name: a, target: /a, size: 1.5Gi}]`, `size "1.5Gi"`},
		{"bad unit", `[{name: a, target: /a, size: 1GB}]`, `size "1GB"`},
		{"overflow", `[{name: a, target: /a, size: 9000000Pi}]`, "too large"},
		{"bad fs", `[{name: a, target: /a, fs: zfs}]`, `fs "zfs": must be one of ext4, xfs, btrfs`},
		{"from without snapshot", `[{name: b, target: /b, from: a}]`, `from "a": want VOLUME@SNAPSHOT`},
		{"from bad snapshot", `[{name: b, target: /b, from: a@Mon_1}]`, `from "a@Mon_1": want VOLUME@SNAPSHOT`},
		{"from two ats", `[{name: b, target: /b, from: a@b@c}]`, "want VOLUME@SNAPSHOT"},
		{"from a path", `[{name: b, target: /b, from: ../t/a@s}]`, "want VOLUME@SNAPSHOT"},
		{"from itself", `[{name: b, target: /b, from: b@s}]`, "its own snapshot"},
		{"from not a string", `[{name: b, target: /b, from: [a]}]`, "from: must be a string"},
		{"readOnly not bool", `[{name: a, target: /a, readOnly: sure}]`, "readOnly: must be a bool"},
		{"duplicate name", `[{name: a, target: /a}, {name: a, target: /b}]`, `volume 2 ("a"): name: duplicate of volume 1`},
		{"duplicate target", `[{name: a, target: /a}, {name: b, target: /a}]`, "duplicate of volume 1"},
		{"nested target", `[{name: a, target: /a}, {name: b, target: /a/b}]`, "nested with volume 1"},
		{"too many", many, "more than the limit of 16"},
		{"too large", "[{name: a, target: /" + strings.Repeat("a", MaxValueBytes) + "}]", "more than the limit of 16384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromAnnotations(map[string]string{Key: tc.value}, "")
			if err == nil {
				t.Fatalf("accepted %q", tc.value)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `annotation "volumes.mooring.dev": `) || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %q, want the key and %q", msg, tc.want)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
		})
	}
}

func TestFromAnnotationsNone(t *testing.T) {
	vols, err := FromAnnotations(map[string]string{"other": "x"}, "c")
	if vols != nil || err != nil {
		t.Fatalf("got %v %v", vols, err)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	vols := []Volume{
		{Name: "true", Target: "/a: b #c", Size: 1 << 30, FS: "btrfs", ReadOnly: true},
		{Name: "123", Target: "/x/\"y\"", Pool: "null"},
		{Name: "raw", Target: "/disk", Mode: ModeBlock},
	}
	s, err := Format(vols)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	if !reflect.DeepEqual(got, vols) {
		t.Fatalf("round trip %s: got %+v", s, got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`[{name: a, target: /a, size: 1Gi, fs: xfs, readOnly: true, pool: p}]`,
		`[{name: b, target: /b, from: a@s}]`,
		`[{name: c, target: /c, mode: block, readOnly: true}, {name: d, target: /d, mode: filesystem}]`,
		`[{"name":"a","target":"/a"}]`,
		"- name: a\n  target: /a\n",
		`[{name: a, target: /a}, {name: b, target: /a/b}]`,
		`&a [*a]`,
		"[{name: a, target: /a}]\n---\n[{name: b, target: /b}]",
		"[{name: a, target: /a}]\n...\n",
		"[{name: a, target: \"/a\\u202eb\"}]",
		"[{name: a, target: /a\u2067b}]",
		"- name: a\n  target: |\n    /a\n    ---\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vols, err := Parse(s)
		if err != nil {
			return
		}
		out, err := Format(vols)
		if err != nil {
			t.Fatalf("format %+v: %v", vols, err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("parse(format(parse(%q))) = %q: %v", s, out, err)
		}
		if !reflect.DeepEqual(again, vols) {
			t.Fatalf("unstable: %+v vs %+v", vols, again)
		}
	})
}

func FuzzFromAnnotations(f *testing.F) {
	f.Add(KeyContainerPrefix+"db", "db", `[{name: a, target: /a}]`)
	f.Add(KeyPod, "", `[{name: a, target: /proc}]`)
	f.Add(Key, "", "[{name: a, target: /a}]\n---\n[{name: a, target: /proc}]")
	f.Add(Key, "", "[{name: a, target: \"/\\u202eatad\"}]")
	f.Add(Key, "", `[{name: a, target: /a, mode: block, fs: xfs}]`)
	f.Fuzz(func(t *testing.T, key, container, value string) {
		vols, err := FromAnnotations(map[string]string{key: value}, container)
		if err != nil && vols != nil {
			t.Fatal("volumes returned with an error")
		}
		for _, v := range vols {
			if v.validate() != nil || !strings.HasPrefix(v.Target, "/") {
				t.Fatalf("invalid volume accepted: %+v", v)
			}
		}
	})
}

func TestCRIAnnotations(t *testing.T) {
	if n := CRIContainerName(map[string]string{"io.kubernetes.container.name": "db"}); n != "db" {
		t.Fatalf("CRI-O name: %q", n)
	}
	if n := CRIContainerName(map[string]string{"io.kubernetes.cri.container-name": "web"}); n != "web" {
		t.Fatalf("containerd name: %q", n)
	}
	if !IsCRISandbox(map[string]string{"io.kubernetes.cri.container-type": "sandbox"}) ||
		!IsCRISandbox(map[string]string{"io.kubernetes.cri-o.ContainerType": "sandbox"}) ||
		IsCRISandbox(map[string]string{"io.kubernetes.cri.container-type": "container"}) {
		t.Fatal("IsCRISandbox")
	}
}
