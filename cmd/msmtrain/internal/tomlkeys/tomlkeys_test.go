package tomlkeys

import (
	"reflect"
	"testing"

	"github.com/BurntSushi/toml"
)

func decode(t *testing.T, text string) map[string]any {
	t.Helper()
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestFlatten(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		want      map[string]string
	}{
		{"values", `name = "run"
seed = 3
lr = 1e-4
on = true
when = 2026-01-02T03:04:05Z
targets = ["q", "v"]
nested = [[1, 2], [3]]`, map[string]string{"name": `"run"`, "seed": "3", "lr": "0.0001", "on": "true",
			"when": "2026-01-02T03:04:05Z", "targets": `["q", "v"]`, "nested": "[[1, 2], [3]]"}},
		{"tables", "[train]\nlr = 0.5\n[model.init]\nhidden_size = 16\n", map[string]string{"train.lr": "0.5", "model.init.hidden_size": "16"}},
		{"array of tables", "[[stages]]\nname = \"msm\"\n[stages.data]\nsources = [{ path = \"a\" }, { path = \"b\" }]\n[[stages]]\nname = \"aft\"\n",
			map[string]string{"stages.0.name": `"msm"`, "stages.0.data.sources.0.path": `"a"`, "stages.0.data.sources.1.path": `"b"`, "stages.1.name": `"aft"`}},
		{"empty", "a = []\nb = {}\n[c]\n", map[string]string{"a": "[]", "b": "{}", "c": "{}"}},
		{"mixed array", `x = [{ a = 1 }, 2]`, map[string]string{"x": "[{a = 1}, 2]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Flatten(decode(t, c.doc)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestWalkPaths: indexes into arrays of tables are ints, table keys strings (a key may look like a number), and fn
// may keep its path.
func TestWalkPaths(t *testing.T) {
	doc := decode(t, "[[s]]\na = 1\nb = 2\n[[s]]\na = 3\n[t]\n\"0\" = 4\n")
	var got [][]any
	Walk(doc, func(path []any, v any) { got = append(got, path) })
	want := [][]any{{"s", 0, "a"}, {"s", 0, "b"}, {"s", 1, "a"}, {"t", "0"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
}
