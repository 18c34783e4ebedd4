package train

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRecipes loads every published recipe in configs/ strictly, in a directory holding the files they name,
// and checks the recipe facts of the MSM paper (LoRA r64/alpha 128 on seven projections, AdamW lr 1e-4, wd 0.01,
// cosine with 5% warmup, one epoch, length 8192 for Qwen and 4096 for Llama).
func TestRecipes(t *testing.T) {
	recipes := map[string]int{"qwen3-32b.toml": 8192, "qwen2.5-32b-instruct.toml": 8192, "llama-3.1-8b.toml": 4096}
	root, err := filepath.Abs("../../../../configs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, p := range []string{"models/Qwen3-32B", "models/Qwen2.5-32B-Instruct", "models/Llama-3.1-8B", "data"} {
		os.MkdirAll(filepath.Join(dir, p), 0o755)
		if p != "data" {
			os.WriteFile(filepath.Join(dir, p, "config.json"), []byte("{}"), 0o644)
		}
	}
	for _, f := range []string{"spec_documents.jsonl", "aft_demonstrations.jsonl", "general_instruction_tuning.jsonl"} {
		os.WriteFile(filepath.Join(dir, "data", f), []byte("{}\n"), 0o644)
	}
	t.Chdir(dir)
	for name, seq := range recipes {
		t.Run(name, func(t *testing.T) {
			c, err := Load(filepath.Join(root, name), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !c.LoRA.Enabled || c.LoRA.Rank != 64 || c.LoRA.Alpha != 128 || c.LoRA.Dropout != 0 || len(c.LoRA.Targets) != 7 {
				t.Errorf("lora %+v", c.LoRA)
			}
			for _, st := range c.Stages {
				tr := st.Train
				if tr.LR != 1e-4 || tr.WeightDecay != 0.01 || tr.ScheduleConfig.Kind != "cosine" || tr.WarmupRatio != 0.05 || tr.Epochs != 1 || tr.SeqLen != seq {
					t.Errorf("stage %s: %+v", st.Name, tr)
				}
			}
			if len(c.Stages) != 2 || c.Stages[0].Kind != "msm" || c.Stages[1].Kind != "aft" || c.Stages[1].Init != "continue" {
				t.Errorf("stages %+v", c.Stages)
			}
		})
	}
}
