package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWithMode(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{"WriteFile": WriteFile, "Replace": Replace} {
		t.Run(name, func(t *testing.T) { testReplacesWithMode(t, write) })
	}
}

func testReplacesWithMode(t *testing.T, write func(string, []byte, os.FileMode) error) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, tc := range []struct {
		data string
		perm os.FileMode
	}{{"first", 0o600}, {"second, longer", 0o640}, {"", 0o644}} {
		if err := write(path, []byte(tc.data), tc.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		st, serr := os.Stat(path)
		if err != nil || serr != nil || string(got) != tc.data || st.Mode().Perm() != tc.perm {
			t.Fatalf("got %q mode %v (%v %v), want %q %v", got, st.Mode().Perm(), err, serr, tc.data, tc.perm)
		}
	}
	assertOnly(t, dir, "f")
}

func TestFailedCommitLeavesTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, ".f.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = Commit(f, path, func(f *os.File) error {
		f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Commit: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("path now holds %q", got)
	}
	assertOnly(t, dir, "f")
}

func TestWriteFileNeedsTheDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "f")
	if err := WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(names) || (len(got) > 0 && got[0] != names[0]) {
		t.Fatalf("dir holds %v, want %v", got, names)
	}
}
