package decoder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/msmtrain/msmtrain/torch"
)

// MaxScoreLine is the longest JSONL line ScoreJSONL reads.
const MaxScoreLine = 64 << 20

// ScoreJSONL reads JSONL lines {"ids": [...]} from r and writes one line {"logprobs": [...]} per input line to w,
// in order: the log-probability of each token after the first given the tokens before it (n-1 values). Lines
// are scored batch at a time, right-padded. Blank lines are skipped; a malformed line, an empty ids list or an id
// outside the vocabulary is an error naming the line.
func ScoreJSONL(m *Model, r io.Reader, w io.Writer, batch int) error {
	if batch <= 0 {
		batch = 1
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), MaxScoreLine)
	bw := bufio.NewWriter(w)
	var rows [][]int64
	var lines []int
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		lps, err := m.scoreRows(rows)
		if err != nil {
			return fmt.Errorf("decoder: score lines %d-%d: %w", lines[0], lines[len(lines)-1], err)
		}
		for _, lp := range lps {
			b, err := json.Marshal(struct {
				Logprobs []float32 `json:"logprobs"`
			}{lp})
			if err != nil {
				return fmt.Errorf("decoder: score: %w", err)
			}
			bw.Write(b)
			bw.WriteByte('\n')
		}
		rows, lines = rows[:0], lines[:0]
		return nil
	}
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(trimSpace(line)) == 0 {
			continue
		}
		var in struct {
			IDs *[]int64 `json:"ids"`
		}
		if err := json.Unmarshal(line, &in); err != nil {
			return fmt.Errorf("decoder: score: line %d: %w", n, err)
		}
		if in.IDs == nil || len(*in.IDs) == 0 {
			return fmt.Errorf("decoder: score: line %d: no \"ids\" (want {\"ids\": [token, ...]})", n)
		}
		for i, id := range *in.IDs {
			if id < 0 || id >= int64(m.Config.VocabSize) {
				return fmt.Errorf("decoder: score: line %d: ids[%d] = %d is outside the vocabulary [0, %d)", n, i, id, m.Config.VocabSize)
			}
		}
		rows, lines = append(rows, *in.IDs), append(lines, n)
		if len(rows) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("decoder: score: after line %d: %w", n, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("decoder: score: %w", err)
	}
	return nil
}

// scoreRows returns the next-token log-probabilities of each row (len-1 values each).
func (m *Model) scoreRows(rows [][]int64) ([][]float32, error) {
	B, T := int64(len(rows)), int64(0)
	for _, r := range rows {
		T = max(T, int64(len(r)))
	}
	ids, pos, seg, tgt := make([]int64, B*T), make([]int64, B*T), make([]int64, B*T), make([]int64, B*T)
	for b, r := range rows {
		for t := range T {
			i := int64(b)*T + t
			tgt[i] = -100
			if t < int64(len(r)) {
				ids[i], pos[i], seg[i] = r[t], t, 1
				if t+1 < int64(len(r)) {
					tgt[i] = r[t+1]
				}
			}
		}
	}
	s := torch.NewScope()
	defer s.Close()
	dev := m.opts.Device
	lp := m.LogProbs(torch.FromInt64s(ids, B, T).ToDevice(dev), torch.FromInt64s(pos, B, T).ToDevice(dev),
		torch.FromInt64s(seg, B, T).ToDevice(dev), torch.FromInt64s(tgt, B, T).ToDevice(dev)) // (B, T)
	v, err := lp.Float32s()
	if err != nil {
		return nil, err
	}
	out := make([][]float32, B)
	for b, r := range rows {
		out[b] = append([]float32{}, v[int64(b)*T:int64(b)*T+int64(len(r))-1]...)
	}
	return out, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
