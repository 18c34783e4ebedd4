// Package tomlkeys flattens a decoded TOML document to its leaves under dotted keys ("train.lr",
// "stages.0.train.lr"): the one spelling in which msmtrain shows a config key, in a report's config differences and
// in the keys a resumed run refuses to change.
package tomlkeys

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Walk calls fn for each leaf of doc, a document as BurntSushi/toml decodes it into map[string]any, in key order.
// A leaf is a value that is not a table or an array of tables, or an empty table or array of tables (so that one
// shows). path holds the keys of the tables on the way (string) and, for a table of an array of tables, its index
// (int); fn may keep it.
func Walk(doc map[string]any, fn func(path []any, v any)) {
	walk(nil, doc, fn)
}

func walk(path []any, v any, fn func(path []any, v any)) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			if len(path) > 0 {
				fn(slices.Clip(path), x)
			}
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(append(slices.Clip(path), k), x[k], fn)
		}
	case []map[string]any:
		if len(x) == 0 {
			fn(slices.Clip(path), x)
		}
		for i, e := range x {
			walk(append(slices.Clip(path), i), e, fn)
		}
	case []any:
		if !isTableArray(x) {
			fn(slices.Clip(path), x)
			return
		}
		for i, e := range x {
			walk(append(slices.Clip(path), i), e, fn)
		}
	default:
		fn(slices.Clip(path), x)
	}
}

// isTableArray reports whether an array decoded as []any (an inline array) holds only tables.
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

// Key writes a path of Walk with dots: "stages.0.train.lr".
func Key(path []any) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}

// Value writes a decoded TOML value as TOML would: strings quoted, arrays and tables inline.
func Value(v any) string {
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
			parts[i] = Value(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []map[string]any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = Value(x)
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
			parts[i] = k + " = " + Value(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return fmt.Sprint(v)
	}
}

// Flatten maps the Key of each leaf of doc to its Value.
func Flatten(doc map[string]any) map[string]string {
	out := map[string]string{}
	Walk(doc, func(path []any, v any) { out[Key(path)] = Value(v) })
	return out
}
