package infer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const probeSrc = `{"id":"p1","messages":[{"role":"user","content":"Is it honest?"}],"choices":["Yes","No, not at all","maybe"],"values":["frugality","speed","frugality"]}

{"id":"p2","messages":[{"role":"system","content":"Be helpful."},{"role":"user","content":"What?"}],"choices":["The answer","Tell me more"],"values":["speed","frugality"],"note":"ignored"}
{"id":"p3","messages":[{"role":"user","content":"What is the answer?"}],"choices":["no","maybe","Yes, the model"],"values":["care","speed","frugality"]}
{"id":"p4","messages":[{"role":"user","content":"Tell me more."}],"choices":["helpful","honest"],"values":["care","speed"]}
`

// TestProbeMetricMatchesMC: the share, length-normalised share and margin of every value equal those computed by
// hand from the per-item log-probabilities of the multiple-choice scorer on the same chats and choices.
func TestProbeMetricMatchesMC(t *testing.T) {
	tok, tmpl := chatFixture(t)
	m := newModel(t, tinyConfigs(tok.VocabSize())["qwen3"], 21)
	defer m.Free()
	dir := t.TempDir()
	path := filepath.Join(dir, "probes.jsonl")
	if err := os.WriteFile(path, []byte(probeSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	items, err := LoadProbes(path, tmpl, tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, sum, err := ScoreProbes(m, tmpl, tok, items)
	if err != nil {
		t.Fatal(err)
	}

	// The same items as multiple-choice questions, read by ReadMC from their own JSON.
	var mcSrc strings.Builder
	var labels [][]string
	for _, line := range strings.Split(probeSrc, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		var l []string
		for _, v := range rec["values"].([]any) {
			l = append(l, v.(string))
		}
		labels = append(labels, l)
		delete(rec, "values")
		rec["answer"] = 0
		b, _ := json.Marshal(rec)
		mcSrc.Write(append(b, '\n'))
	}
	mcItems, err := ReadMC(strings.NewReader(mcSrc.String()), "mc.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	mcRes, _, err := ScoreMC(m, tmpl, tok, mcItems)
	if err != nil {
		t.Fatal(err)
	}

	type acc struct{ n, share, shareNorm, margin float64 }
	want := map[string]*acc{}
	for k, r := range mcRes {
		best, bestNorm := 0, 0
		for i, lp := range r.LogProbs {
			if lp > r.LogProbs[best] {
				best = i
			}
			if lp/float64(r.Tokens[i]) > r.LogProbs[bestNorm]/float64(r.Tokens[bestNorm]) {
				bestNorm = i
			}
		}
		seen := map[string]bool{}
		for _, v := range labels[k] {
			if seen[v] {
				continue
			}
			seen[v] = true
			a := want[v]
			if a == nil {
				a = &acc{}
				want[v] = a
			}
			a.n++
			if labels[k][best] == v {
				a.share++
			}
			if labels[k][bestNorm] == v {
				a.shareNorm++
			}
			in, out := math.Inf(-1), math.Inf(-1)
			for i, lp := range r.LogProbs {
				if labels[k][i] == v {
					in = math.Max(in, lp)
				} else {
					out = math.Max(out, lp)
				}
			}
			a.margin += in - out
		}
		if res[k].ID != r.ID || len(res[k].LogProbs) != len(r.LogProbs) {
			t.Fatalf("item %d: probe result %+v, MC %+v", k, res[k], r)
		}
		for i := range r.LogProbs {
			if res[k].LogProbs[i] != r.LogProbs[i] {
				t.Errorf("item %s choice %d: probe log-prob %v, MC %v", r.ID, i, res[k].LogProbs[i], r.LogProbs[i])
			}
		}
		if res[k].PickValue != labels[k][best] {
			t.Errorf("item %s: picked %q, want %q", r.ID, res[k].PickValue, labels[k][best])
		}
	}
	if sum.N != 4 || len(sum.Values) != len(want) {
		t.Fatalf("summary %+v, want 4 items and values %v", sum, want)
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }
	for v, a := range want {
		got := sum.Values[v]
		t.Logf("%s: n %d share %.3f share_norm %.3f margin %.4f", v, got.N, got.Share, got.ShareNorm, got.Margin)
		if float64(got.N) != a.n || !close(got.Share, a.share/a.n) || !close(got.ShareNorm, a.shareNorm/a.n) ||
			!close(got.Margin, a.margin/a.n) {
			t.Errorf("%s: %+v, want n %v share %v share_norm %v margin %v", v, got, a.n, a.share/a.n, a.shareNorm/a.n, a.margin/a.n)
		}
	}
	// Every item's pick counts for exactly one of its values.
	var picks float64
	for _, v := range sum.Labels() {
		picks += sum.Values[v].Share * float64(sum.Values[v].N)
	}
	if math.Abs(picks-4) > 1e-9 {
		t.Errorf("shares add up to %v picks over 4 items", picks)
	}
}

// TestProbeMetricsByHand: ProbeMetrics on made-up log-probabilities, worked out on paper.
func TestProbeMetricsByHand(t *testing.T) {
	items := []ProbeItem{
		{ID: "a", Choices: []string{"x", "y", "z"}, Values: []string{"A", "B", "A"}},
		{ID: "b", Choices: []string{"x", "y"}, Values: []string{"B", "A"}},
		{ID: "c", Choices: []string{"x", "y"}, Values: []string{"B", "C"}},
	}
	lps := [][]float64{{-5, -2, -1}, {-3, -4}, {-10, -2}}
	toks := [][]int{{5, 2, 4}, {1, 3}, {2, 2}}
	_, sum, err := ProbeMetrics(items, lps, toks)
	if err != nil {
		t.Fatal(err)
	}
	// A: items a (pick z = A, margin -1 - -2 = 1), b (pick x = B, margin -4 - -3 = -1): share 1/2, margin 0.
	// By tokens: a: -1, -1, -0.25 -> z (A); b: -3, -1.33 -> y (A): share_norm 1.
	// B: items a, b, c: picks z (A), x (B), y (C): share 1/3; margins -1, 1, -8: -8/3; share_norm: c -5, -1 -> C: 0.
	// C: item c: pick y: share 1, margin 8, share_norm 1.
	want := map[string]ProbeValue{
		"A": {N: 2, Share: 0.5, ShareNorm: 1, Margin: 0},
		"B": {N: 3, Share: 1.0 / 3, ShareNorm: 0, Margin: -8.0 / 3},
		"C": {N: 1, Share: 1, ShareNorm: 1, Margin: 8},
	}
	for v, w := range want {
		g := sum.Values[v]
		if g.N != w.N || math.Abs(g.Share-w.Share) > 1e-12 || math.Abs(g.ShareNorm-w.ShareNorm) > 1e-12 || math.Abs(g.Margin-w.Margin) > 1e-12 {
			t.Errorf("%s: %+v, want %+v", v, g, w)
		}
	}
	if sum.N != 3 || len(sum.Values) != 3 {
		t.Errorf("summary %+v", sum)
	}
}

func TestReadProbesErrors(t *testing.T) {
	_, tmpl := chatFixture(t)
	ok := `{"id":"a","messages":[{"role":"user","content":"x"}],"choices":["y","z"],"values":["A","B"]}`
	for _, c := range []struct{ name, src, want string }{
		{"malformed", ok + "\n\n{\"id\":", "f.jsonl:3: "},
		{"missing id", `{"messages":[{"role":"user","content":"x"}],"choices":["y","z"],"values":["A","B"]}`, `f.jsonl:1: missing "id"`},
		{"duplicate id", ok + "\n" + ok, `f.jsonl:2: id "a" repeats line 1`},
		{"length mismatch", ok + "\n" + `{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["y","z","w"],"values":["A","B"]}`,
			"f.jsonl:2: item b: 2 values for 3 choices"},
		{"no values", `{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["y","z"]}`, "f.jsonl:1: item b: 0 values for 2 choices"},
		{"one label", `{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["y","z"],"values":["A","A"]}`,
			`f.jsonl:1: item b: every choice is labelled "A", want at least 2 different value labels`},
		{"one choice", `{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["y"],"values":["A"]}`, "f.jsonl:1: item b: 1 choices, want at least 2"},
		{"empty label", `{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["y","z"],"values":["A",""]}`, "f.jsonl:1: item b: value label 1 is empty"},
		{"empty choice", `{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["","z"],"values":["A","B"]}`, "f.jsonl:1: item b: choice 0 is empty"},
		{"no messages", `{"id":"b","choices":["y","z"],"values":["A","B"]}`, "f.jsonl:1: item b: no messages"},
		{"unknown role", ok + "\n" + `{"id":"b","messages":[{"role":"wizard","content":"x"}],"choices":["y","z"],"values":["A","B"]}`, "f.jsonl:2: item b: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			items, err := ReadProbes(strings.NewReader(c.src), "f.jsonl")
			if err == nil {
				err = CheckMC(tmpl, mcItems(items))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "empty.jsonl")
	if err := os.WriteFile(path, []byte("\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, _ := chatFixture(t)
	if _, err := LoadProbes(path, tmpl, tok, 0); err == nil || !strings.Contains(err.Error(), "no items") {
		t.Errorf("empty file: %v", err)
	}
}
