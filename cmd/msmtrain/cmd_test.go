package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// tinyModelDir saves a small random qwen3 model with a ChatML byte-level tokenizer (and a tokenizer_config.json
// whose chat_template is detected as "chatml") to a temporary directory.
func tinyModelDir(t *testing.T) (string, *tokenizer.Tokenizer) {
	t.Helper()
	dir := t.TempDir()
	corpus := []string{"The model should be honest and helpful.", "What is the answer? Yes, no, maybe. Tell me more."}
	tj, err := tokenizer.NewByteLevel(60, corpus, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(tj, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	c := decoder.Config{ModelType: "qwen3", VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 16, RMSNormEps: 1e-6, RopeTheta: 10000, HiddenAct: "silu", TieWordEmbeddings: true}
	m, err := decoder.New(c, decoder.Options{DType: torch.Float32, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg := `{"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"}`
	for name, b := range map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": []byte(cfg)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, tok
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(args, &out, &errb)
	return out.String() + errb.String(), err
}

var promptLines = []string{
	`{"id": "chat-1", "messages": [{"role": "user", "content": "Is the model honest?"}]}`,
	`{"id": 2, "prompt": "The answer is"}`,
	`{"id": "chat-3", "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Tell me more about the model."}]}`,
	`{"id": "raw-4", "prompt": "Yes"}`,
	`{"id": "chat-5", "messages": [{"role": "user", "content": "What?"}]}`,
}

// outputRows reads generation output keyed by "id/sample", failing on duplicates.
func outputRows(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var o struct {
			ID      json.RawMessage
			Sample  int
			Text    string
			NTokens int    `json:"n_tokens"`
			Finish  string `json:"finish_reason"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		k := fmt.Sprintf("%s/%d", o.ID, o.Sample)
		if _, dup := rows[k]; dup {
			t.Fatalf("%s:%d: %s repeated", path, i+1, k)
		}
		if o.Finish != "stop" && o.Finish != "length" || o.NTokens == 0 && o.Finish == "length" {
			t.Fatalf("%s:%d: %s", path, i+1, l)
		}
		rows[k] = fmt.Sprintf("%q %d %s", o.Text, o.NTokens, o.Finish)
	}
	return rows
}

func TestGenerateResume(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "in.jsonl"), strings.Join(promptLines, "\n")+"\n")
	gen := func(input, output string, batch int) {
		t.Helper()
		out, err := runCmd(t, "generate", "--model", model, "--input", input, "--output", output, "--samples", "2",
			"--batch", fmt.Sprint(batch), "--temperature", "0.9", "--top-p", "0.95", "--seed", "3", "--max-new-tokens", "12")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	ref := filepath.Join(dir, "ref.jsonl")
	gen(in, ref, 3)
	want := outputRows(t, ref)
	if len(want) != 2*len(promptLines) {
		t.Fatalf("%d rows, want %d", len(want), 2*len(promptLines))
	}
	t.Run("batch 1", func(t *testing.T) {
		out := filepath.Join(dir, "b1.jsonl")
		gen(in, out, 1)
		if got := outputRows(t, out); !mapsEqual(got, want) {
			t.Errorf("batch 1 differs from batch 3:\n%v\n%v", got, want)
		}
	})
	t.Run("interrupted after two prompts", func(t *testing.T) {
		out := filepath.Join(dir, "part.jsonl")
		gen(writeFile(t, filepath.Join(dir, "first2.jsonl"), strings.Join(promptLines[:2], "\n")), out, 4)
		if n := len(outputRows(t, out)); n != 4 {
			t.Fatalf("%d rows after the first two prompts", n)
		}
		gen(in, out, 4)
		if got := outputRows(t, out); !mapsEqual(got, want) {
			t.Errorf("resumed output differs:\n%v\n%v", got, want)
		}
	})
	t.Run("truncated mid-line", func(t *testing.T) {
		b, err := os.ReadFile(ref)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(b, []byte("\n"))
		cut := len(bytes.Join(lines[:3], nil)) + len(lines[3])/2
		out := writeFile(t, filepath.Join(dir, "trunc.jsonl"), string(b[:cut]))
		gen(in, out, 2)
		if got := outputRows(t, out); !mapsEqual(got, want) {
			t.Errorf("output after a crash differs:\n%v\n%v", got, want)
		}
		// A complete run is a no-op.
		before, _ := os.ReadFile(out)
		gen(in, out, 2)
		if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
			t.Error("re-running a finished generation changed the output")
		}
	})
}

func TestGenerateGreedyMatchesBatch(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "in.jsonl"), strings.Join(promptLines, "\n"))
	var outs []map[string]string
	for _, b := range []string{"1", "5"} {
		out := filepath.Join(dir, "g"+b+".jsonl")
		if o, err := runCmd(t, "generate", "--model", model, "--input", in, "--output", out, "--temperature", "0",
			"--batch", b, "--max-new-tokens", "8", "--stop", "zzz-never"); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		outs = append(outs, outputRows(t, out))
	}
	if !mapsEqual(outs[0], outs[1]) {
		t.Errorf("greedy batch 1 and 5 differ:\n%v\n%v", outs[0], outs[1])
	}
}

func TestCommandErrors(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	nmc := 0
	mc := func(s string) string {
		nmc++
		return writeFile(t, filepath.Join(dir, fmt.Sprintf("mc%d.jsonl", nmc)), s)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"malformed prompt", []string{"generate", "--model", model, "--output", out, "--input",
			writeFile(t, filepath.Join(dir, "bad.jsonl"), promptLines[0]+"\n{\"id\": 2, \"prompt\": \n")}, "bad.jsonl:2: "},
		{"unknown role", []string{"generate", "--model", model, "--output", out, "--input",
			writeFile(t, filepath.Join(dir, "role.jsonl"), promptLines[1]+"\n"+`{"id": 3, "messages": [{"role": "robot", "content": "x"}]}`)}, "role.jsonl:2: "},
		{"no model", []string{"generate", "--input", "x", "--output", out}, "--model is required"},
		{"bad top-p", []string{"generate", "--model", model, "--input", "x", "--output", out, "--top-p", "2"}, "top-p"},
		{"empty choices", []string{"eval", "--model", model, "--mc",
			mc(`{"id": "q", "messages": [{"role": "user", "content": "x"}], "choices": [], "answer": 0}`)}, "mc1.jsonl:1: the choice list is empty"},
		{"mc unknown role", []string{"eval", "--model", model, "--mc",
			mc(`{"id": "q", "messages": [{"role": "user", "content": "x"}], "choices": ["a"], "answer": 0}` + "\n" +
				`{"id": "r", "messages": [{"role": "robot", "content": "x"}], "choices": ["a"], "answer": 0}`)}, "mc2.jsonl:2: item r: "},
		{"eval both", []string{"eval", "--model", model, "--mc", "a", "--data", "b"}, "one of --data"},
		{"report nothing", []string{"report"}, "one or more run directories"},
		{"report missing run", []string{"report", filepath.Join(dir, "nope")}, "nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := runCmd(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q\n%s", err, c.want, out)
			}
		})
	}
}

func TestEvalMC(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	mc := writeFile(t, filepath.Join(dir, "mc.jsonl"), `{"id": "q1", "messages": [{"role": "user", "content": "Is it honest?"}], "choices": ["Yes", "No"], "answer": 0}
{"id": "q2", "messages": [{"role": "user", "content": "What?"}], "choices": ["Tell me more", "maybe", "no"], "answer": 2}
`)
	res := filepath.Join(dir, "run", "eval", "mc.json")
	items := filepath.Join(dir, "items.jsonl")
	if out, err := runCmd(t, "eval", "--model", model, "--mc", mc, "--out", res, "--items", items); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var m map[string]float64
	b, _ := os.ReadFile(res)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"n", "mc_accuracy", "mc_accuracy_norm", "mc_margin"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no %s in %s", res, k, b)
		}
	}
	if m["n"] != 2 {
		t.Errorf("n = %v", m["n"])
	}
	if b, _ := os.ReadFile(items); bytes.Count(b, []byte("\n")) != 2 {
		t.Errorf("items:\n%s", b)
	}
}

// TestEvalData checks the packed held-out loss against scoring each document alone (rows of 40 positions hold
// several documents; none is longer, so none is cut).
func TestEvalData(t *testing.T) {
	model, tok := tinyModelDir(t)
	dir := filepath.Join(t.TempDir(), "val")
	dw, err := shard.CreateDataset(dir, shard.DatasetOptions{TokenizerHash: tok.Hash(), VocabSize: tok.VocabSize(), Sources: []string{"spec", "generic"}})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"The model should be honest.", "What is the answer?", "Tell me more, maybe.", "Yes, no, maybe. The model is helpful.", "honest"}
	type doc struct {
		ids  []int
		mask []bool
		src  int
	}
	var docs []doc
	for i, s := range texts {
		ids := tok.Encode(s)
		d := doc{ids: ids, mask: make([]bool, len(ids)), src: i % 2}
		t32 := make([]int32, len(ids))
		for k := range ids {
			t32[k] = int32(ids[k])
			d.mask[k] = k%3 != 1 // a partial mask
		}
		if err := dw.Add(t32, d.mask, d.src); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	if _, err := dw.Close(shard.Manifest{}); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(t.TempDir(), "loss.json")
	if out, err := runCmd(t, "eval", "--model", model, "--data", dir, "--seq-len", "40", "--batch", "2", "--out", res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got dataMetrics
	b, _ := os.ReadFile(res)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	// Reference: each document alone, loss on targets whose mask bit is set.
	m, err := decoder.Load(model, decoder.Options{DType: torch.Float32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	sums, counts := make([]float64, 2), make([]int64, 2)
	for _, d := range docs {
		n := len(d.ids) - 1
		ids, pos, seg, tgt := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for k := 0; k < n; k++ {
			ids[k], pos[k], seg[k], tgt[k] = int64(d.ids[k]), int64(k), 1, -100
			if d.mask[k+1] {
				tgt[k] = int64(d.ids[k+1])
				counts[d.src]++
			}
		}
		s := torch.NewScope()
		v, err := m.LogProbs(torch.FromInt64s(ids, 1, int64(n)), torch.FromInt64s(pos, 1, int64(n)),
			torch.FromInt64s(seg, 1, int64(n)), torch.FromInt64s(tgt, 1, int64(n))).SumAll().Item()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		sums[d.src] -= v
	}
	for i, name := range []string{"spec", "generic"} {
		want := sums[i] / float64(counts[i])
		if math.Abs(got.LossBySource[name]-want) > 1e-4 || got.TokensBySrc[name] != counts[i] {
			t.Errorf("%s: loss %.6f over %d tokens, want %.6f over %d", name, got.LossBySource[name], got.TokensBySrc[name], want, counts[i])
		}
	}
	if want := (sums[0] + sums[1]) / float64(counts[0]+counts[1]); math.Abs(got.Loss-want) > 1e-4 || math.Abs(got.PPL-math.Exp(want)) > 1e-3 {
		t.Errorf("loss %.6f ppl %.4f, want %.6f", got.Loss, got.PPL, want)
	}
}

// TestEncodeJSONL: msmtrain tokenize writes the ids of each line's text, in order, over several parallel batches;
// bad lines name their number.
func TestEncodeJSONL(t *testing.T) {
	_, tok := tinyModelDir(t)
	var in bytes.Buffer
	var texts []string
	for i := range 600 { // more than two batches
		s := fmt.Sprintf("The model should be honest, rule %d. %s", i, strings.Repeat("Tell me more? ", i%7))
		if i%50 == 0 {
			s = ""
		}
		texts = append(texts, s)
		json.NewEncoder(&in).Encode(map[string]any{"text": s, "source": "x"})
		if i == 3 {
			in.WriteString("\n")
		}
	}
	var out bytes.Buffer
	if err := encodeJSONL(&in, &out, tok); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	for i, s := range texts {
		var got struct{ IDs []int }
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if want := tok.Encode(s); !slices.Equal(got.IDs, want) && !(len(want) == 0 && got.IDs != nil && len(got.IDs) == 0) {
			t.Fatalf("doc %d: ids %v, want %v", i, got.IDs, want)
		}
	}
	if dec.More() {
		t.Error("more output lines than documents")
	}
	for _, c := range []struct{ name, in, want string }{
		{"bad json", "{\"text\":\"a\"}\n{\"text\":\n", "line 2"},
		{"no text", "{\"text\":\"a\"}\n\n{\"body\":\"b\"}\n", "line 3"},
		{"text not a string", "{\"text\":5}\n", "line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := encodeJSONL(strings.NewReader(c.in), &bytes.Buffer{}, tok); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}

// TestScoreJSONL: msmtrain score writes each line's token log-probabilities, in order, as when the line is scored
// alone; bad lines name their number.
func TestScoreJSONL(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	rows := [][]int{{1, 2, 3, 4}, {7}, {9, 8, 7, 6, 5, 4, 3}}
	in := writeFile(t, filepath.Join(dir, "ids.jsonl"), "{\"ids\":[1,2,3,4]}\n\n{\"ids\":[7]}\n{\"ids\":[9,8,7,6,5,4,3]}\n")
	out, err := runCmd(t, "score", "--model", model, "--input", in, "--batch", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(rows) {
		t.Fatalf("%d output lines: %q", len(lines), out)
	}
	m, err := decoder.Load(model, decoder.Options{DType: torch.Float32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	var worst float64
	for i, row := range rows {
		var got struct{ Logprobs []float32 }
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatal(err)
		}
		want, err := infer.TokenLogProbs(m, [][]int{row})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Logprobs) != len(row)-1 {
			t.Fatalf("line %d: %d values, want %d", i+1, len(got.Logprobs), len(row)-1)
		}
		for k := range got.Logprobs {
			worst = max(worst, math.Abs(float64(got.Logprobs[k]-want[0][k])))
		}
	}
	if worst > 1e-5 {
		t.Errorf("largest difference from rows scored alone %.2e", worst)
	}
	for _, c := range []struct{ in, want string }{
		{"{\"ids\":[1,2]}\n{\"ids\":[1,\n", "line 2"},
		{"{\"ids\":[1,2]}\n{\"x\":[1]}\n", "line 2: no \"ids\""},
		{fmt.Sprintf("{\"ids\":[1,%d]}\n", m.Config.VocabSize), fmt.Sprintf("line 1: ids[1] = %d is outside", m.Config.VocabSize)},
	} {
		if err := scoreJSONL(m, strings.NewReader(c.in), &bytes.Buffer{}, 4); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("input %q: error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestReport(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	for i, name := range []string{"runA", "runB"} {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(d, "eval"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "config.toml"), fmt.Sprintf("name = %q\n[train]\nlr = %g\n", name, 1e-4*float64(i+1)))
		var ml strings.Builder
		for s := 1; s <= 5; s++ {
			fmt.Fprintf(&ml, `{"kind":"train","stage":"msm","step":%d,"loss":%g,"tokens":%d}`+"\n", s, 3-0.2*float64(s), 100*s)
		}
		fmt.Fprintf(&ml, `{"kind":"eval","stage":"msm","step":5,"eval_loss":2.5}`+"\n")
		writeFile(t, filepath.Join(d, "metrics.jsonl"), ml.String())
		writeFile(t, filepath.Join(d, "eval", "mc.json"), fmt.Sprintf(`{"n": 2, "mc_accuracy": %g}`, 0.5*float64(i)))
		dirs = append(dirs, d)
	}
	out, err := runCmd(t, "report", dirs[0], "--out", filepath.Join(root, "cmp"), dirs[1])
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	md, err := os.ReadFile(filepath.Join(root, "cmp", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"runA", "runB", "train.lr", "mc_accuracy"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q:\n%s", s, md)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "cmp", "loss.png")); err != nil {
		t.Error(err)
	}
	if out, err := runCmd(t, "report", dirs[0]); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "report", "report.md")); err != nil {
		t.Errorf("default --out: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	ka := make([]string, 0, len(a))
	for k := range a {
		ka = append(ka, k)
	}
	slices.Sort(ka)
	for _, k := range ka {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
