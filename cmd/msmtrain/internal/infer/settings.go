package infer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Settings are what decides the text of a generation output: the model and adapter, the dtype, the chat template
// and the sampling. Every line of a `generate` output carries them as "settings", so that a continued file holds
// one experiment: a re-run with other settings is refused, naming each difference. Readers of the output that
// look only at id, sample and text (the judges) are unaffected by the extra field.
//
// The batch size and the device are not settings: they change results only by floating-point rounding. Settings
// that greedy decoding ignores (seed, top-p, top-k) are recorded as their neutral values when temperature is 0.
type Settings struct {
	Model        string   `json:"model"`       // absolute path, for messages
	ModelFiles   string   `json:"model_files"` // Fingerprint of the model directory: what is compared
	Adapter      string   `json:"adapter,omitempty"`
	AdapterFiles string   `json:"adapter_files,omitempty"`
	DType        string   `json:"dtype"`
	ChatTemplate string   `json:"chat_template,omitempty"` // the family used for chat prompts
	Temperature  float64  `json:"temperature"`
	TopP         float64  `json:"top_p"`
	TopK         int      `json:"top_k"`
	Seed         uint64   `json:"seed"`
	MaxNew       int      `json:"max_new_tokens"`
	Samples      int      `json:"samples"`
	Stop         []string `json:"stop,omitempty"`
}

// Normalize puts equivalent settings in one form: sorted stop strings, top-p 0 as 1 (both off), and under greedy
// decoding (temperature 0) the seed, top-p and top-k that it ignores.
func (s Settings) Normalize() Settings {
	s.Stop = slices.Clone(s.Stop)
	slices.Sort(s.Stop)
	if s.TopP == 0 {
		s.TopP = 1
	}
	if s.Temperature == 0 {
		s.Seed, s.TopP, s.TopK = 0, 1, 0
	}
	return s
}

// Diff lists how s (the settings a file was made with) differs from now, by the flag that sets each, as
// "--temperature 0.7 (now 1)". The model and adapter are compared by the fingerprint of their files, not their
// paths: a moved model is the same model, a retrained adapter in the same directory is not.
func (s Settings) Diff(now Settings) []string {
	s, now = s.Normalize(), now.Normalize()
	var d []string
	add := func(flag string, was, is any) {
		d = append(d, fmt.Sprintf("%s %v (now %v)", flag, show(was), show(is)))
	}
	if s.ModelFiles != now.ModelFiles {
		d = append(d, fmt.Sprintf("--model %s with files %s (now %s with files %s)", show(s.Model), show(s.ModelFiles), now.Model, now.ModelFiles))
	}
	if s.AdapterFiles != now.AdapterFiles {
		d = append(d, fmt.Sprintf("--adapter %s with files %s (now %s with files %s)", show(s.Adapter), show(s.AdapterFiles), show(now.Adapter),
			show(now.AdapterFiles)))
	}
	if s.DType != now.DType {
		add("--dtype", s.DType, now.DType)
	}
	if s.ChatTemplate != now.ChatTemplate {
		add("--chat-template", s.ChatTemplate, now.ChatTemplate)
	}
	if s.Temperature != now.Temperature {
		add("--temperature", s.Temperature, now.Temperature)
	}
	if s.TopP != now.TopP {
		add("--top-p", s.TopP, now.TopP)
	}
	if s.TopK != now.TopK {
		add("--top-k", s.TopK, now.TopK)
	}
	if s.Seed != now.Seed {
		add("--seed", s.Seed, now.Seed)
	}
	if s.MaxNew != now.MaxNew {
		add("--max-new-tokens", s.MaxNew, now.MaxNew)
	}
	if s.Samples != now.Samples {
		add("--samples", s.Samples, now.Samples)
	}
	if !slices.Equal(s.Stop, now.Stop) {
		add("--stop", fmt.Sprintf("%q", s.Stop), fmt.Sprintf("%q", now.Stop))
	}
	return d
}

func show(v any) any {
	if v == "" {
		return "(none)"
	}
	return v
}

// Fingerprint identifies the files of a model or adapter directory without reading the weights: a hash of the
// name, size and modification time of each .json and .safetensors file (links followed, as in the Hugging Face
// cache). Rewriting the weights (a retrained adapter in the same directory) changes it; moving the directory
// does not.
func Fingerprint(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n := 0
	for _, e := range ents { // sorted by name
		name := e.Name()
		if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".safetensors") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", name, fi.Size(), fi.ModTime().UnixNano())
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("%s: no .json or .safetensors files", dir)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
