package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// stageEvals runs the evaluations a stage configures (eval_mc, eval_prompts) on its final model and returns the
// numeric results (the trainer records them with the stage's scalars):
//
//	RUN/eval/<stage>-mc.json          mc_accuracy, mc_accuracy_norm, mc_margin, n (read by msmtrain report)
//	RUN/<stage>/eval_mc_items.jsonl   per item: log-probabilities of each choice, pick, margin
//	RUN/<stage>/generations.jsonl     greedy answers to eval_prompts: {"id", "sample", "text", "n_tokens", "finish_reason"}
func stageEvals(cfg *train.Config, st *train.Stage, m train.Model) (map[string]float64, error) {
	if st.EvalMC == "" && st.EvalPrompts == "" {
		return nil, nil
	}
	tm, ok := m.(*trainModel)
	if !ok {
		return nil, fmt.Errorf("stage evaluations need a decoder model")
	}
	var results map[string]float64
	tok, err := tokenizer.Load(cfg.TokenizerPath())
	if err != nil {
		return nil, err
	}
	family, err := cfg.ChatTemplate()
	if err != nil {
		return nil, err
	}
	tmpl, err := chat.New(family, tok)
	if err != nil {
		return nil, err
	}
	stageDir := filepath.Join(cfg.OutDir, st.Name)
	if st.EvalMC != "" {
		f, err := os.Open(st.EvalMC)
		if err != nil {
			return nil, err
		}
		items, err := infer.ReadMC(f, st.EvalMC)
		f.Close()
		if err != nil {
			return nil, err
		}
		if err := infer.CheckMC(tmpl, items); err != nil {
			return nil, err
		}
		if err := infer.CheckMCPositions(tmpl, tok, items, tm.Model.Config.MaxPositionEmbeddings); err != nil {
			return nil, err
		}
		res, sum, err := infer.ScoreMC(tm.Model, tmpl, tok, items)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(cfg.OutDir, "eval"), 0o755); err != nil {
			return nil, err
		}
		if err := rundir.WriteJSON(rundir.Dir(cfg.OutDir).MCResult(st.Name), sum); err != nil {
			return nil, err
		}
		if err := writeJSONL(filepath.Join(stageDir, "eval_mc_items.jsonl"), res); err != nil {
			return nil, err
		}
		results = map[string]float64{"mc_accuracy": sum.Accuracy, "mc_accuracy_norm": sum.AccuracyNorm, "mc_margin": sum.MeanMargin}
	}
	if st.EvalPrompts != "" {
		if err := stagePrompts(cfg, st, tm, tok, tmpl, filepath.Join(stageDir, "generations.jsonl")); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// stagePrompts answers the stage's eval_prompts greedily (a fresh file each time the stage completes).
func stagePrompts(cfg *train.Config, st *train.Stage, tm *trainModel, tok *tokenizer.Tokenizer, tmpl *chat.Template, out string) error {
	f, err := os.Open(st.EvalPrompts)
	if err != nil {
		return err
	}
	defer f.Close()
	type prompt struct {
		ID       json.RawMessage `json:"id"`
		Messages []chat.Message  `json:"messages"`
	}
	var ps []prompt
	var reqs []infer.Request
	maxNew := st.EvalMaxNew
	if maxNew == 0 {
		maxNew = 256
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var p prompt
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("%s:%d: %w", st.EvalPrompts, line, err)
		}
		ids, err := tmpl.RenderPrompt(p.Messages)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", st.EvalPrompts, line, err)
		}
		if err := checkPositions(tm.Model.Config, len(ids)+maxNew); err != nil {
			return fmt.Errorf("%s:%d: the prompt's %d tokens and eval_max_new_tokens %d: %w", st.EvalPrompts, line, len(ids), maxNew, err)
		}
		ps = append(ps, p)
		reqs = append(reqs, infer.Request{Prompt: ids})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	o := infer.GenOptions{Sampling: infer.Sampling{Temperature: 0}, MaxNew: maxNew,
		StopTokens: []int{tmpl.EOT(), tmpl.EOS()}, Decode: tok.Decode}
	rows := make([]infer.Output, len(reqs))
	const batch = 8
	for s := 0; s < len(reqs); s += batch {
		e := min(s+batch, len(reqs))
		err := infer.GenerateBatch(tm.Model, reqs[s:e], o, func(c infer.Completion) error {
			i := s + c.Index
			rows[i] = infer.Output{ID: ps[i].ID, Sample: 0, Text: c.Text, NTokens: len(c.Tokens), Finish: c.Finish}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return writeJSONL(out, rows)
}

// writeJSONL replaces the run file path with rows as JSON lines (never through a symbolic link, see
// rundir.WriteFile).
func writeJSONL[T any](path string, rows []T) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return rundir.WriteFile(path, b.Bytes())
}
