// Package testenv finds the independent references that msmtrain's tests compare against — PyTorch behind a
// Python interpreter, and the npm packages that scripts/testdeps-npm.sh installs — and skips a test that lacks
// them with a message saying how to install them. Under CI (the CI variable set), which installs every
// reference, a missing one fails the test instead: a green CI run never hides a skipped comparison.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// SkipOrFail skips the test, or fails it under CI.
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}

var pyCheck = sync.OnceValues(func() (string, error) {
	py := os.Getenv("MSMTRAIN_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	return py, exec.Command(py, "-c", "import torch").Run()
})

// Python returns a Python interpreter that can import torch ($MSMTRAIN_PYTHON, default /usr/bin/python3).
func Python(tb testing.TB) string {
	tb.Helper()
	py, err := pyCheck()
	if err != nil {
		SkipOrFail(tb, "reference tests need PyTorch: %s cannot import torch (apt-get install python3-torch, or set MSMTRAIN_PYTHON): %v", py, err)
	}
	return py
}

// RunPython runs testdata/script with args under Python and fails the test, with the script's output, if it fails.
func RunPython(tb testing.TB, script string, args ...string) []byte {
	tb.Helper()
	out, err := exec.Command(Python(tb), append([]string{filepath.Join("testdata", script)}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s failed: %v\n%s", script, err, out)
	}
	return out
}

// NPMModules returns the node_modules directory filled by scripts/testdeps-npm.sh (under $MSM_CACHE, default
// ~/.cache/msmtrain/npm), checking that node and each named package are there.
func NPMModules(tb testing.TB, pkgs ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		SkipOrFail(tb, "node not found: install Node.js (apt-get install nodejs npm), then run scripts/testdeps-npm.sh")
	}
	cache := os.Getenv("MSM_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			SkipOrFail(tb, "no MSM_CACHE and no home directory: %v", err)
		}
		cache = filepath.Join(home, ".cache", "msmtrain")
	}
	dir := filepath.Join(cache, "npm", "node_modules")
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, p, "package.json")); err != nil {
			SkipOrFail(tb, "npm package %s missing from %s: run scripts/testdeps-npm.sh", p, dir)
		}
	}
	return dir
}
