package report

import (
	"bytes"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte(`{"kind":"train","stage":"msm","step":12,"loss":2.31,"lr":1e-4,"tokens":49152,"time":"2026-11-28T08:00:00Z"}` + "\n" +
		`{"kind":"eval","stage":"msm","step":12,"eval_loss":2.5,"eval_ppl":12.2,"by_source":{"wren-spec":{"loss":2.4,"tokens":100}}}`))
	f.Add([]byte("\n\n{\"kind\":\"x\"}\r\n{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := rundir.ReadMetrics(bytes.NewReader(b), "metrics.jsonl")
		if err != nil {
			if m != nil {
				t.Fatal("results with an error")
			}
			return
		}
		r := &Run{Train: m.Train, Eval: m.Eval, Config: map[string]string{}}
		r.order()
		_ = r.Stats()
	})
}
