package main

import (
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
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// stageEvals runs the evaluations a stage configures (eval_mc, eval_prompts) on its final model and returns the
// numeric results (the trainer records them with the stage's scalars):
//
//	RUN/eval/<stage>-mc.json          mc_accuracy, mc_accuracy_norm, mc_margin, n (read by msmtrain report)
//	RUN/<stage>/eval_mc_items.jsonl   per item: log-probabilities of each choice, pick, margin
//	RUN/<stage>/generations.jsonl     greedy answers to eval_prompts: {"id", "sample", "text", "n_tokens", "finish_reason"}
//
// Only when write is set are files written: with sharded weights every process runs the evaluations (each forward
// pass gathers the weights from all), and rank 0 writes.
func stageEvals(cfg *train.Config, st *train.Stage, m train.Model, write bool) (map[string]float64, error) {
	if st.EvalMC == "" && st.EvalPrompts == "" {
		return nil, nil
	}
	dm := m.Decoder()
	if dm == nil {
		return nil, fmt.Errorf("stage %s: eval_mc and eval_prompts need a decoder model", st.Name)
	}
	tok, tmpl, err := configChat(cfg)
	if err != nil {
		return nil, err
	}
	run := rundir.Dir(cfg.OutDir)
	var results map[string]float64
	if st.EvalMC != "" {
		res, sum, err := infer.RunMC(dm, tmpl, tok, st.EvalMC)
		if err != nil {
			return nil, err
		}
		if write {
			if err := os.MkdirAll(run.EvalResults(), 0o755); err != nil {
				return nil, err
			}
			if err := rundir.WriteJSON(run.MCResult(st.Name), sum); err != nil {
				return nil, err
			}
			if err := writeJSONL(run.MCItems(st.Name), res); err != nil {
				return nil, err
			}
		}
		results = map[string]float64{"mc_accuracy": sum.Accuracy, "mc_accuracy_norm": sum.AccuracyNorm, "mc_margin": sum.MeanMargin}
	}
	if st.EvalPrompts != "" {
		out := ""
		if write {
			out = run.Generations(st.Name)
		}
		if err := stagePrompts(st, dm, tok, tmpl, out); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// configChat loads the tokenizer and chat template of a training config.
func configChat(cfg *train.Config) (*tokenizer.Tokenizer, *chat.Template, error) {
	tok, err := tokenizer.Load(cfg.TokenizerPath())
	if err != nil {
		return nil, nil, err
	}
	family, err := cfg.ChatTemplate()
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := chat.New(family, tok)
	if err != nil {
		return nil, nil, err
	}
	return tok, tmpl, nil
}

// stagePrompts answers the stage's eval_prompts greedily (a fresh file each time the stage completes; none when
// out is ""), as `msmtrain generate --temperature 0 --max-new-tokens N` does (without its settings on each line).
func stagePrompts(st *train.Stage, m *decoder.Model, tok *tokenizer.Tokenizer, tmpl *chat.Template, out string) error {
	maxNew := st.EvalMaxNew
	if maxNew == 0 {
		maxNew = 256
	}
	prompts, err := infer.ReadPromptsFile(st.EvalPrompts)
	if err != nil {
		return err
	}
	ids, err := infer.EncodePrompts(prompts, tok, tmpl, m.Config.MaxPositionEmbeddings, maxNew, "eval_max_new_tokens")
	if err != nil {
		return err
	}
	jobs := make([]infer.Job, len(prompts))
	for i := range prompts {
		jobs[i] = infer.Job{Prompt: &prompts[i], Tokens: ids[i]}
	}
	o := infer.GenOptions{Sampling: infer.Sampling{Temperature: 0}, MaxNew: maxNew, StopTokens: []int{tmpl.EOT(), tmpl.EOS()}, Decode: tok.Decode}
	rows := make([]infer.Output, len(jobs))
	err = infer.Generate(m, jobs, 8, 0, o, func(i int, c infer.Completion) error {
		rows[i] = infer.Output{ID: jobs[i].Prompt.ID, Sample: 0, Text: c.Text, NTokens: len(c.Tokens), Finish: c.Finish}
		return nil
	})
	if err != nil || out == "" {
		return err
	}
	return writeJSONL(out, rows)
}

// writeJSONL replaces the run file path with rows as JSON lines (never through a symbolic link, see
// rundir.WriteFile).
func writeJSONL[T any](path string, rows []T) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := jsonLines(rows)
	if err != nil {
		return err
	}
	return rundir.WriteFile(path, b)
}

// jsonLines encodes rows as JSON lines.
func jsonLines[T any](rows []T) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}
