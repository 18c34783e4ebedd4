package decoder

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/torch"
)

func TestBaseModelName(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(filepath.Join("models", "Llama-3.1-8B"), 0o755); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "models", "Llama-3.1-8B")
	cache := filepath.Join(dir, "hub", "models--Qwen--Qwen3-32B", "snapshots", "0123abcd")
	tests := []struct {
		name, nameOrPath, path, want string
	}{
		{"hub-name", "meta-llama/Llama-3.1-8B", "models/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"},
		{"hub-name-dots", "Qwen/Qwen2.5-32B-Instruct", "x", "Qwen/Qwen2.5-32B-Instruct"},
		{"cache-path", "", cache, "Qwen/Qwen3-32B"},
		{"cache-path-subdir", "", filepath.Join(cache, "sub"), "Qwen/Qwen3-32B"},
		{"relative-dir", "", "models/Llama-3.1-8B", local},
		{"absolute-local-name", "/scratch/llama", "models/Llama-3.1-8B", local},
		{"dot-local-name", "./models/llama", "models/Llama-3.1-8B", local},
		{"bare-name", "llama", "models/Llama-3.1-8B", local},
		{"double-dash", "meta--llama/x", "missing", "missing"},
		{"dot-dot", "a/..b", "missing", "missing"},
		{"trailing-dot", "meta-llama/x.", "missing", "missing"},
		{"three-parts", "a/b/c", "missing", "missing"},
		{"missing-path", "", "missing/dir", "missing/dir"},
		{"random-init", "", "msmtrain-random-init", "msmtrain-random-init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BaseModelName(Config{NameOrPath: tt.nameOrPath}, tt.path); got != tt.want {
				t.Fatalf("BaseModelName(%q, %q) = %q, want %q", tt.nameOrPath, tt.path, got, tt.want)
			}
		})
	}
}

// TestSaveAdapterBaseName checks base_model_name_or_path in the adapter_config.json that SaveAdapter writes: the
// Hub id from config.json's _name_or_path, one the caller sets, or else the base directory as an absolute path
// (what AutoPeftModelForCausalLM passes to from_pretrained).
func TestSaveAdapterBaseName(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	c := tinyConfigs()["llama"]
	named := c
	named.NameOrPath = "meta-llama/Llama-3.1-8B"
	writeModel(t, named, torch.Float32, "named", 1)
	writeModel(t, c, torch.Float32, "plain", 2)
	lc := &LoRAConfig{Rank: 2, Alpha: 4, Targets: AllProjections}
	for _, tt := range []struct {
		name, dir, set, want string
	}{
		{"config-json", "named", "", "meta-llama/Llama-3.1-8B"},
		{"set-by-caller", "plain", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"},
		{"local-path", "plain", "", filepath.Join(root, "plain")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := mustLoad(t, tt.dir, Options{DType: torch.Float32, LoRA: lc, Seed: 3})
			defer m.Free()
			if tt.set != "" {
				m.Config.NameOrPath = tt.set
			}
			adir := filepath.Join(root, "adapter-"+tt.name)
			if err := m.SaveAdapter(adir, tt.dir); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(adir, "adapter_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var p struct {
				Base string `json:"base_model_name_or_path"`
			}
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			if p.Base != tt.want {
				t.Fatalf("base_model_name_or_path = %q, want %q", p.Base, tt.want)
			}
			if _, err := ReadAdapterConfig(adir); err != nil {
				t.Fatal(err)
			}
		})
	}
}
