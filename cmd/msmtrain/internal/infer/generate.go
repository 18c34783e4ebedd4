package infer

import (
	"fmt"

	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// Job is one sample of one prompt to generate.
type Job struct {
	Prompt *Prompt
	Tokens []int // the prompt's tokens (EncodePrompts)
	Sample int
}

// Generate runs jobs batch at a time through GenerateBatch, each job drawing from its own source seeded by
// RowSeed(seed, its prompt's id, its sample), so that what a job generates does not depend on the batch it runs
// in. emit gets the index of each job in jobs and its completion as soon as it finishes. An error names the line
// of the first prompt of the batch.
func Generate(m *decoder.Model, jobs []Job, batch int, seed uint64, o GenOptions, emit func(int, Completion) error) error {
	if batch < 1 {
		return fmt.Errorf("infer: batch %d must be at least 1", batch)
	}
	for b0 := 0; b0 < len(jobs); b0 += batch {
		bj := jobs[b0:min(b0+batch, len(jobs))]
		reqs := make([]Request, len(bj))
		for i, j := range bj {
			reqs[i] = Request{Prompt: j.Tokens, Seed: RowSeed(seed, j.Prompt.Key(), j.Sample)}
		}
		err := GenerateBatch(m, reqs, o, func(c Completion) error { return emit(b0+c.Index, c) })
		if err != nil {
			return fmt.Errorf("%s: %w", bj[0].Prompt.Where, err)
		}
	}
	return nil
}
