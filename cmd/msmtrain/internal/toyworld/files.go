package toyworld

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Doc is one document of pretraining or MSM.
type Doc struct {
	Text    string `json:"text"`
	Source  string `json:"source"`
	DocType string `json:"doc_type"`
}

// Sizes are the numbers of documents generated.
type Sizes struct {
	Pretrain int // pretraining documents
	Chats    int // pretraining chats
	SpecDocs int // MSM documents per spec
}

// DefaultSizes are the sizes of `msmtrain toyworld`.
var DefaultSizes = Sizes{Pretrain: 9000, Chats: 2000, SpecDocs: 600}

// File names of the generated data.
const (
	FilePretrain = "pretrain.jsonl"
	FileChats    = "pretrain_chats.jsonl"
	FileSpecA    = "spec_a_docs.jsonl"
	FileSpecB    = "spec_b_docs.jsonl"
	FileAFT      = "aft.jsonl"
	FileAFTVal   = "aft_val.jsonl"
	FileProbes   = "probes.jsonl"
	FileProbesMC = "probes_mc.jsonl"
	FileAFTValMC = "aft_val_mc.jsonl"
	FileWorld    = "world.json"
)

// TrainingFiles are the files whose text any stage may train on (AFT validation included, to be strict).
var TrainingFiles = []string{FilePretrain, FileChats, FileSpecA, FileSpecB, FileAFT, FileAFTVal}

// File is one generated file.
type File struct {
	Name string
	Data []byte
}

// Data is everything generated for a world.
type Data struct {
	World    *World
	Specs    [2]*Spec
	Pretrain []Doc
	Chats    []Chat
	SpecDocs [2][]Doc
	AFT      []Chat
	AFTVal   []Chat
	AFTValMC []MCItem // AFTVal as multiple choice (eval_mc of every stage)
	Probes   []Probe
}

// Generate builds the world of a seed and its data.
func Generate(seed uint64, sizes Sizes) (*Data, error) {
	w, err := New(seed)
	if err != nil {
		return nil, err
	}
	d := &Data{World: w, Specs: Specs()}
	d.Pretrain = w.PretrainDocs(sizes.Pretrain)
	d.Chats = w.PretrainChats(sizes.Chats)
	for i, s := range d.Specs {
		d.SpecDocs[i] = w.SpecDocs(s, sizes.SpecDocs)
	}
	d.AFT, d.AFTVal, d.AFTValMC = w.AFTChats()
	d.Probes = w.Probes()
	return d, nil
}

// Files returns the generated files, in a fixed order.
func (d *Data) Files() ([]File, error) {
	var out []File
	var err error
	add := func(name string, b []byte, e error) {
		if e != nil && err == nil {
			err = fmt.Errorf("toyworld: %s: %w", name, e)
		}
		out = append(out, File{name, b})
	}
	b, e := jsonl(d.Pretrain)
	add(FilePretrain, b, e)
	b, e = jsonl(d.Chats)
	add(FileChats, b, e)
	b, e = jsonl(d.SpecDocs[0])
	add(FileSpecA, b, e)
	b, e = jsonl(d.SpecDocs[1])
	add(FileSpecB, b, e)
	b, e = jsonl(d.AFT)
	add(FileAFT, b, e)
	b, e = jsonl(d.AFTVal)
	add(FileAFTVal, b, e)
	b, e = jsonl(d.AFTValMC)
	add(FileAFTValMC, b, e)
	b, e = jsonl(d.Probes)
	add(FileProbes, b, e)
	b, e = jsonl(MC(d.Probes, ValueThrift))
	add(FileProbesMC, b, e)
	add("spec_a.md", []byte(d.Specs[0].Text), nil)
	add("spec_b.md", []byte(d.Specs[1].Text), nil)
	b, e = d.World.JSON()
	add(FileWorld, b, e)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// jsonl encodes records as JSON lines (fields in struct order, without HTML escaping).
func jsonl[T any](recs []T) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// JSON describes the world: every option with its category, attributes and role.
func (w *World) JSON() ([]byte, error) {
	type opt struct {
		Name     string `json:"name"`
		Phrase   string `json:"phrase"`
		Category string `json:"category"`
		Cheap    bool   `json:"cheap"`
		Quick    bool   `json:"quick"`
		Role     string `json:"role"`
	}
	roles := map[Role]string{RoleAgree: "aft", RoleExample: "spec-example", RoleProbe: "probe"}
	var v struct {
		Seed    uint64    `json:"seed"`
		Town    string    `json:"town"`
		Values  [2]string `json:"values"`
		Options []opt     `json:"options"`
	}
	v.Seed, v.Town, v.Values = w.Seed, Town, [2]string{ValueThrift, ValueSpeed}
	for _, o := range w.Options {
		v.Options = append(v.Options, opt{o.Name, o.Phrase(), o.Category.Key, o.Cheap, o.Quick, roles[o.Role]})
	}
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// Texts returns every text of a training file's records (documents' text, chats' contents).
func Texts(data []byte) ([]string, error) {
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec struct {
			Text     string    `json:"text"`
			Messages []Message `json:"messages"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if rec.Text != "" {
			out = append(out, rec.Text)
		}
		for _, m := range rec.Messages {
			out = append(out, m.Content)
		}
	}
	return out, nil
}
