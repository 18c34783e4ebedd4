package safetensors

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"
)

// requireTorch returns a Python interpreter that imports torch, or skips (fails under CI).
func requireTorch(t testing.TB) string { return testenv.Python(t) }

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
