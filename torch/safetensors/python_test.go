package safetensors

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The reference tests run PyTorch through the Debian interpreter, or the one
// named by $MSMTRAIN_PYTHON.
var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  string
)

// requireTorch returns a Python interpreter that imports torch, or skips.
func requireTorch(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		py := os.Getenv("MSMTRAIN_PYTHON")
		if py == "" {
			py = "/usr/bin/python3"
		}
		out, err := exec.Command(py, "-c", "import torch").CombinedOutput()
		if err != nil {
			pythonErr = py + " cannot import torch (apt install python3-torch, or set MSMTRAIN_PYTHON): " + err.Error() + ": " + string(out)
			return
		}
		pythonPath = py
	})
	if pythonPath == "" {
		skipOrFail(t, "%s", pythonErr)
	}
	return pythonPath
}

// runPython runs script with args in dir and fails the test on error.
func runPython(t *testing.T, dir, script string, args ...string) {
	t.Helper()
	py := requireTorch(t)
	path := filepath.Join(dir, "script.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{path}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// skipOrFail skips a test whose reference is missing, except under CI (CI set), which installs every reference:
// there a missing one is a failure, not a silent skip.
func skipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}
