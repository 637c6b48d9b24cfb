package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips (locally) or fails (under CI) the test when ok is false.
func Require(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", reason)
	}
	t.Skipf("prerequisite missing: %s", reason)
}

// RequireRoot requires uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "needs root")
}

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ToolsDir is the project-local directory where `make tools` installs
// runc, containerd and friends.
func ToolsDir() string {
	if d := os.Getenv("MOORING_TOOLS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".tools", "bin")
}

// LookTool finds a program in ToolsDir first, then in PATH.
func LookTool(name string) (string, bool) {
	p := filepath.Join(ToolsDir(), name)
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p, true
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	return "", false
}

// RequireTool returns the path of a program or skips/fails the test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, ok := LookTool(name)
	Require(t, ok, name+" not found in "+ToolsDir()+" or PATH (run make tools)")
	return p
}
