package train

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// decodeSets decodes the config text with each --set ("section.key=value", "stages.NAME.key=value") applied in
// turn to the file's table of keys, the result encoded and decoded again after each, so that an error (a wrong
// type, an unknown key) names the --set that caused it rather than a line of a document the user never wrote.
// sets is not empty. Errors are complete ("config: NAME: --set S: ...").
func decodeSets(text []byte, name string, sets []string) (*Config, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(text), &doc); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	var c *Config
	for _, s := range sets {
		if err := applySet(doc, s); err != nil {
			return nil, fmt.Errorf("config: %s: --set %s: %w", name, s, err)
		}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(doc); err != nil {
			return nil, fmt.Errorf("config: %s: --set %s: %w", name, s, err)
		}
		var err error
		if c, err = decode(b.String()); err != nil {
			return nil, fmt.Errorf("config: %s: --set %s: %s", name, s, withoutLine(err))
		}
	}
	return c, nil
}

// tomlPosition is the "toml: line N (last key "k"): " prefix of BurntSushi/toml's decoding errors.
var tomlPosition = regexp.MustCompile(`toml: (line \d+ )?\(last key "([^"]*)"\): `)

// withoutLine drops the line number from a decoding error of a document made from --set values: that line is in
// no file the user wrote. The key stays.
func withoutLine(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.LastKey != "" {
			return fmt.Sprintf("%s: %s", pe.LastKey, pe.Message)
		}
		return pe.Message
	}
	return tomlPosition.ReplaceAllString(err.Error(), "$2: ")
}

// setKey is a bare TOML key segment; --set keys are dotted bare keys.
var setKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// applySet applies one --set "a.b.c=value" to the decoded document. The value is TOML, or a string when it does
// not parse as TOML. Keys of a stage are addressed by its name, "stages.NAME.key"; a key under stages without a
// stage name, or a name no stage has, is an error: an override is applied as written or refused, never guessed.
func applySet(doc map[string]any, s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return errors.New("want section.key=value")
	}
	path := strings.Split(k, ".")
	for _, p := range path {
		if !setKey.MatchString(p) {
			return fmt.Errorf("key %q: want dotted plain keys (letters, digits, _ and -), e.g. train.lr or stages.msm.train.steps", k)
		}
	}
	v = strings.TrimSpace(v)
	var probe map[string]any
	if _, err := toml.Decode("x = "+v, &probe); err != nil {
		probe = map[string]any{"x": v} // a bare word: a string
	}
	val := probe["x"]
	if path[0] != "stages" {
		return setIn(doc, path, val, "")
	}
	var stages []map[string]any
	switch x := doc["stages"].(type) {
	case []map[string]any: // [[stages]]
		stages = x
	case []any: // stages = [{...}, ...]
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				stages = append(stages, m)
			}
		}
	}
	var names []string
	for _, st := range stages {
		n, _ := st["name"].(string)
		names = append(names, strconv.Quote(n))
	}
	have := "the config has no [[stages]]"
	if len(names) > 0 {
		have = "stages: " + strings.Join(names, ", ")
	}
	if len(path) < 3 {
		return fmt.Errorf("name a stage and its key: stages.NAME.key=value (%s)", have)
	}
	var found map[string]any
	for _, st := range stages {
		if n, _ := st["name"].(string); n == path[1] {
			if found != nil {
				return fmt.Errorf("two stages are named %q", path[1])
			}
			found = st
		}
	}
	if found == nil {
		return fmt.Errorf("no stage is named %q (%s); a stage's keys are set as stages.NAME.key=value", path[1], have)
	}
	return setIn(found, path[2:], val, "stages."+path[1])
}

// setIn sets the value at path in table t, creating the tables on the way; prefix names t in messages.
func setIn(t map[string]any, path []string, val any, prefix string) error {
	for i, p := range path[:len(path)-1] {
		next, ok := t[p]
		if !ok {
			m := map[string]any{}
			t[p] = m
			t = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			at := strings.Join(path[:i+1], ".")
			if prefix != "" {
				at = prefix + "." + at
			}
			what := "a value"
			switch next.(type) {
			case []any, []map[string]any:
				what = "an array"
			}
			return fmt.Errorf("%s is %s, not a table: set it whole", at, what)
		}
		t = m
	}
	t[path[len(path)-1]] = val
	return nil
}
