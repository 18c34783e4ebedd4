package prep

import (
	"fmt"
	"runtime"
)

// Kinds of sources.
const (
	KindDocuments = "documents"
	KindChats     = "chats"
)

// Source is one input of a prepared dataset.
type Source struct {
	Name   string  `toml:"name" json:"name"`
	Path   string  `toml:"path" json:"path"`     // a file or a glob
	Kind   string  `toml:"kind" json:"kind"`     // "documents" or "chats"
	Weight float64 `toml:"weight" json:"weight"` // 0 or unset: 1
}

// Config configures Run; a trainer's [data] section embeds it.
type Config struct {
	OutDir       string   `toml:"out_dir" json:"out_dir"`
	Tokenizer    string   `toml:"tokenizer" json:"tokenizer"`         // tokenizer.json
	ChatTemplate string   `toml:"chat_template" json:"chat_template"` // one of chat.Families
	Sources      []Source `toml:"sources" json:"sources"`

	DocPrefix string `toml:"doc_prefix" json:"doc_prefix"` // e.g. "<DOCTAG>", not trained
	MaxLen    int    `toml:"max_len" json:"max_len"`       // tokens per document, EOS included
	Overlong  string `toml:"overlong" json:"overlong"`     // "truncate" or "split"

	TrainTurns    string `toml:"train_turns" json:"train_turns"` // "all" or "last"
	StripThinking bool   `toml:"strip_thinking" json:"strip_thinking"`

	KeepDuplicates bool    `toml:"keep_duplicates" json:"keep_duplicates"`
	ValFraction    float64 `toml:"val_fraction" json:"val_fraction"`
	Seed           uint64  `toml:"seed" json:"seed"`
	OnError        string  `toml:"on_error" json:"on_error"` // "fail" or "skip"

	// Workers tokenizes in parallel (0: all cores). Not part of the hash.
	Workers int `toml:"workers" json:"-"`
	// ShardTokens and BlockTokens size the output files (0: defaults).
	ShardTokens int64 `toml:"shard_tokens" json:"shard_tokens"`
	BlockTokens int   `toml:"block_tokens" json:"block_tokens"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{ChatTemplate: "qwen3", MaxLen: 8192, Overlong: "truncate", TrainTurns: "all",
		ValFraction: 0.01, OnError: "fail"}
}

// fill sets defaults for zero fields.
func (c *Config) fill() {
	d := Default()
	if c.MaxLen == 0 {
		c.MaxLen = d.MaxLen
	}
	if c.Overlong == "" {
		c.Overlong = d.Overlong
	}
	if c.TrainTurns == "" {
		c.TrainTurns = d.TrainTurns
	}
	if c.OnError == "" {
		c.OnError = d.OnError
	}
	if c.Workers <= 0 {
		c.Workers = runtime.NumCPU()
	}
	for i := range c.Sources {
		if c.Sources[i].Kind == "" {
			c.Sources[i].Kind = KindDocuments
		}
		if c.Sources[i].Weight == 0 {
			c.Sources[i].Weight = 1
		}
	}
}

// Validate reports the first invalid field, named as in TOML.
func (c *Config) Validate() error {
	switch {
	case c.OutDir == "":
		return fmt.Errorf("prep: out_dir is empty")
	case c.Tokenizer == "":
		return fmt.Errorf("prep: tokenizer is empty")
	case len(c.Sources) == 0:
		return fmt.Errorf("prep: no sources")
	case c.MaxLen < 2:
		return fmt.Errorf("prep: max_len %d, want at least 2", c.MaxLen)
	case c.Overlong != "truncate" && c.Overlong != "split":
		return fmt.Errorf("prep: overlong %q, want \"truncate\" or \"split\"", c.Overlong)
	case c.TrainTurns != "all" && c.TrainTurns != "last":
		return fmt.Errorf("prep: train_turns %q, want \"all\" or \"last\"", c.TrainTurns)
	case c.OnError != "fail" && c.OnError != "skip":
		return fmt.Errorf("prep: on_error %q, want \"fail\" or \"skip\"", c.OnError)
	case c.ValFraction < 0 || c.ValFraction >= 1:
		return fmt.Errorf("prep: val_fraction %v, want [0, 1)", c.ValFraction)
	}
	names := map[string]bool{}
	for i, s := range c.Sources {
		switch {
		case s.Name == "":
			return fmt.Errorf("prep: sources[%d]: name is empty", i)
		case names[s.Name]:
			return fmt.Errorf("prep: sources[%d]: duplicate name %q", i, s.Name)
		case s.Path == "":
			return fmt.Errorf("prep: sources[%d] (%s): path is empty", i, s.Name)
		case s.Kind != KindDocuments && s.Kind != KindChats:
			return fmt.Errorf("prep: sources[%d] (%s): kind %q, want %q or %q", i, s.Name, s.Kind, KindDocuments, KindChats)
		case s.Weight < 0 || s.Weight > 1000:
			return fmt.Errorf("prep: sources[%d] (%s): weight %v, want [0, 1000]", i, s.Name, s.Weight)
		}
		names[s.Name] = true
	}
	return nil
}
