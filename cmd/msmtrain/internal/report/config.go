package report

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// loadConfig reads a resolved config.toml and flattens it to dotted keys.
// It decodes generically (no schema): the report compares whatever the
// trainer saved, including keys this package has never heard of.
func loadConfig(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var v map[string]any
	if err := toml.Unmarshal(b, &v); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("report: %w", &LineError{Path: path, Line: pe.Position.Line, Err: errors.New(pe.Message)})
		}
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	out := map[string]string{}
	flattenTOML("", v, out)
	return out, nil
}

// flattenTOML writes the leaves of v under prefix: tables as "a.b", arrays
// of tables as "stages.0.name", arrays of values inline as "[1, 2]".
func flattenTOML(prefix string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 && prefix != "" {
			out[prefix] = "{}"
		}
		for k, x := range v {
			flattenTOML(join(prefix, k), x, out)
		}
	case []map[string]any:
		if len(v) == 0 {
			out[prefix] = "[]"
		}
		for i, x := range v {
			flattenTOML(join(prefix, strconv.Itoa(i)), x, out)
		}
	case []any:
		if isTableArray(v) {
			for i, x := range v {
				flattenTOML(join(prefix, strconv.Itoa(i)), x, out)
			}
			return
		}
		out[prefix] = tomlValue(v)
	default:
		out[prefix] = tomlValue(v)
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func isTableArray(v []any) bool {
	if len(v) == 0 {
		return false
	}
	for _, x := range v {
		if _, ok := x.(map[string]any); !ok {
			return false
		}
	}
	return true
}

// tomlValue renders a TOML value as TOML would write it.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = tomlValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " = " + tomlValue(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return fmt.Sprint(v)
	}
}
