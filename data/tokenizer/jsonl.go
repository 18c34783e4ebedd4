package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// EncodeJSONL reads JSON Lines of the form {"text": ...} from r and writes
// {"ids":[...]} to w, one line per input line, in order. Blank lines are
// skipped. A line that is not a JSON object with a string "text" fails with
// an error naming its line number. Documents are encoded in parallel batches.
func EncodeJSONL(r io.Reader, w io.Writer, t *Tokenizer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	bw := bufio.NewWriterSize(w, 1<<20)
	const batch = 256
	texts := make([]string, 0, batch)
	flush := func() error {
		var buf []byte
		for _, ids := range t.EncodeBatch(texts) {
			buf = append(buf[:0], `{"ids":[`...)
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendInt(buf, int64(id), 10)
			}
			buf = append(buf, "]}\n"...)
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("tokenizer: EncodeJSONL: %w", err)
			}
		}
		texts = texts[:0]
		return nil
	}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(trimSpace(b)) == 0 {
			continue
		}
		var doc struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("tokenizer: EncodeJSONL: line %d: %w", line, err)
		}
		if doc.Text == nil {
			return fmt.Errorf("tokenizer: EncodeJSONL: line %d: no \"text\" string", line)
		}
		texts = append(texts, *doc.Text)
		if len(texts) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tokenizer: EncodeJSONL: after line %d: %w", line, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("tokenizer: EncodeJSONL: %w", err)
	}
	return nil
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
