package decoder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/safetensors"
)

// peftConfig is PEFT's adapter_config.json for a LoRA adapter (the fields PEFT writes; those msmtrain cannot
// honour are checked on read).
type peftConfig struct {
	PeftType          string             `json:"peft_type"`
	TaskType          string             `json:"task_type"`
	BaseModel         string             `json:"base_model_name_or_path"`
	R                 int                `json:"r"`
	LoraAlpha         float64            `json:"lora_alpha"`
	LoraDropout       float64            `json:"lora_dropout"`
	TargetModules     json.RawMessage    `json:"target_modules"`
	Bias              string             `json:"bias"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	InferenceMode     bool               `json:"inference_mode"`
	InitLoraWeights   bool               `json:"init_lora_weights"`
	UseRSLoRA         bool               `json:"use_rslora"`
	UseDoRA           bool               `json:"use_dora"`
	RankPattern       map[string]float64 `json:"rank_pattern"`
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	ModulesToSave     []string           `json:"modules_to_save"`
	LayersToTransform any                `json:"layers_to_transform"`
	LayersPattern     any                `json:"layers_pattern"`
	Revision          any                `json:"revision"`
	AutoMapping       any                `json:"auto_mapping"`
}

// ReadAdapterConfig reads dir/adapter_config.json as a LoRAConfig, rejecting PEFT features msmtrain lacks.
func ReadAdapterConfig(dir string) (LoRAConfig, error) {
	path := filepath.Join(dir, "adapter_config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return LoRAConfig{}, fmt.Errorf("decoder: %w", err)
	}
	var p peftConfig
	if err := json.Unmarshal(b, &p); err != nil {
		return LoRAConfig{}, fmt.Errorf("decoder: %s: %w", path, err)
	}
	bad := func(what string) (LoRAConfig, error) {
		return LoRAConfig{}, fmt.Errorf("decoder: %s: %s is not supported", path, what)
	}
	switch {
	case p.PeftType != "LORA":
		return bad(fmt.Sprintf("peft_type %q", p.PeftType))
	case p.UseRSLoRA:
		return bad("use_rslora")
	case p.UseDoRA:
		return bad("use_dora")
	case p.FanInFanOut:
		return bad("fan_in_fan_out")
	case p.Bias != "" && p.Bias != "none":
		return bad(fmt.Sprintf("bias %q", p.Bias))
	case len(p.RankPattern) > 0 || len(p.AlphaPattern) > 0:
		return bad("rank_pattern/alpha_pattern")
	case len(p.ModulesToSave) > 0:
		return bad("modules_to_save")
	case p.LayersToTransform != nil:
		return bad("layers_to_transform")
	}
	var targets []string
	if err := json.Unmarshal(p.TargetModules, &targets); err != nil {
		return bad("target_modules that is not a list of names (" + string(p.TargetModules) + ")")
	}
	sort.Strings(targets)
	c := LoRAConfig{Rank: p.R, Alpha: p.LoraAlpha, Dropout: p.LoraDropout, Targets: targets}
	if err := c.Validate(); err != nil {
		return LoRAConfig{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// SaveAdapter writes the LoRA adapter in PEFT's format: adapter_config.json and adapter_model.safetensors (float32,
// keys base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight, ...), loadable by peft.PeftModel, and
// by AutoPeftModelForCausalLM, which loads the base named by base_model_name_or_path: the checkpoint's Hugging
// Face name when it is known (see BaseModelName), else baseModel, the base's directory.
func (m *Model) SaveAdapter(dir, baseModel string) error {
	if m.lora == nil {
		return fmt.Errorf("decoder: save adapter: the model has no LoRA adapter")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("decoder: save adapter: %w", err)
	}
	ws := m.loraWeights()
	specs := make([]safetensors.Spec, len(ws))
	for i, w := range ws {
		specs[i] = safetensors.Spec{Name: w.name, DType: safetensors.F32, Shape: w.shape}
	}
	if err := writeTensors(dir, "adapter_model", specs, ws); err != nil {
		return err
	}
	targets := slices.Clone(m.lora.Targets)
	sort.Strings(targets)
	tj, _ := json.Marshal(targets)
	p := peftConfig{
		PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModel: BaseModelName(m.Config, baseModel), R: m.lora.Rank, LoraAlpha: m.lora.Alpha,
		LoraDropout: m.lora.Dropout, TargetModules: tj, Bias: "none", InferenceMode: true, InitLoraWeights: true,
		RankPattern: map[string]float64{}, AlphaPattern: map[string]float64{},
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("decoder: save adapter: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, "adapter_config.json"), append(b, '\n'))
}

// LoadAdapter loads a PEFT LoRA adapter from dir into the model's adapter (adding one with the adapter's
// configuration if the model has none), to continue training it or to score with it. Every LoRA tensor the
// configuration implies must be present with its shape, and no other.
func (m *Model) LoadAdapter(dir string) error {
	ac, err := ReadAdapterConfig(dir)
	if err != nil {
		return err
	}
	if m.lora == nil {
		if err := m.addLoRA(ac); err != nil {
			return err
		}
		m.opts.LoRA = m.lora
	} else {
		want, have := slices.Sorted(slices.Values(ac.Targets)), slices.Sorted(slices.Values(m.lora.Targets))
		if ac.Rank != m.lora.Rank || ac.Alpha != m.lora.Alpha || !slices.Equal(want, have) {
			return fmt.Errorf("decoder: adapter %s (r %d, alpha %g, targets %v) does not match the model's LoRA "+
				"(r %d, alpha %g, targets %v)", dir, ac.Rank, ac.Alpha, want, m.lora.Rank, m.lora.Alpha, have)
		}
	}
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return fmt.Errorf("decoder: adapter: %w", err)
	}
	defer st.Close()
	ws := m.loraWeights()
	known := map[string]bool{}
	for _, w := range ws {
		known[w.name] = true
	}
	for _, n := range st.Names() {
		if !known[n] {
			return fmt.Errorf("decoder: adapter %s: unexpected tensor %q (not a LoRA weight of this model)", dir, n)
		}
	}
	var lerr error
	torch.NoGrad(func() {
		for _, w := range ws {
			t, err := loadWeight(st, w, torch.Float32, m.opts.Device)
			if err == nil {
				err = (*w.t).CopyFrom(t)
				t.Free()
			}
			if err != nil {
				lerr = fmt.Errorf("decoder: adapter %s: %w", dir, err)
				return
			}
		}
	})
	return lerr
}

// BaseModelName is the base_model_name_or_path of an adapter of a model with config c loaded from path: the Hub
// repository id c.NameOrPath (config.json's _name_or_path, or set by the caller) when it is one; else the id in a
// Hugging Face cache path (.../models--ORG--NAME/snapshots/REVISION); else path, made absolute when it is a local
// directory so that the adapter loads from any working directory.
func BaseModelName(c Config, path string) string {
	if IsHubID(c.NameOrPath) {
		return c.NameOrPath
	}
	if id := cacheRepoID(path); id != "" {
		return id
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if abs, err := filepath.Abs(path); err == nil {
			return abs
		}
	}
	return path
}

// IsHubID reports whether s is a Hugging Face model repository id of the form ORG/NAME (the rules of
// huggingface_hub's validate_repo_id). A bare NAME is not taken for one: it is as likely a local directory.
func IsHubID(s string) bool {
	org, name, ok := strings.Cut(s, "/")
	if !ok || len(s) > 96 || strings.Contains(s, "--") || strings.Contains(s, "..") || strings.HasSuffix(s, ".git") {
		return false
	}
	part := func(p string) bool {
		if p == "" || strings.ContainsAny(p[:1]+p[len(p)-1:], ".-") {
			return false
		}
		for _, r := range p {
			if !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
		return true
	}
	return part(org) && part(name)
}

// cacheRepoID returns ORG/NAME for a path inside a Hugging Face hub cache entry models--ORG--NAME, or "".
func cacheRepoID(path string) string {
	for d := filepath.Clean(path); d != filepath.Dir(d); d = filepath.Dir(d) {
		rest, ok := strings.CutPrefix(filepath.Base(d), "models--")
		if !ok {
			continue
		}
		if org, name, ok := strings.Cut(rest, "--"); ok && IsHubID(org+"/"+name) {
			return org + "/" + name
		}
		return ""
	}
	return ""
}
