package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postJSON is the shape of a post_processor: TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel or a Sequence of them.
type postJSON struct {
	Type          string                     `json:"type"`
	Processors    []json.RawMessage          `json:"processors"`
	Single        []map[string]templatePiece `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	Cls json.RawMessage `json:"cls"`
	Sep json.RawMessage `json:"sep"`
}

// templatePiece is one element of a TemplateProcessing template:
// {"SpecialToken": {"id": "<s>", "type_id": 0}} or {"Sequence": {"id": "A", "type_id": 0}}.
type templatePiece struct {
	ID string `json:"id"`
}

// parsePost returns the ids the post_processor adds before and after a single
// sequence when special tokens are added. Ids must belong to the tokenizer.
func (t *Tokenizer) parsePost(b json.RawMessage, field string, ferr ferrFunc) (before, after []int, err error) {
	if isNull(b) {
		return nil, nil, nil
	}
	var p postJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, ferr(field, "%v", err)
	}
	known := func(f string, ids ...int) error {
		for _, id := range ids {
			if _, ok := t.tokens[id]; !ok {
				return ferr(f, "id %d is not a token of the vocabulary or added_tokens", id)
			}
		}
		return nil
	}
	switch p.Type {
	case "ByteLevel": // offsets only
		return nil, nil, nil
	case "Sequence":
		// The Rust library hands a template's output to the next processor as
		// one encoding per piece, so a second processor that adds tokens would
		// see a "pair" (or panic); at most one is accepted.
		adds := -1
		for i, sub := range p.Processors {
			f := fmt.Sprintf("%s.processors[%d]", field, i)
			b, a, err := t.parsePost(sub, f, ferr)
			if err != nil {
				return nil, nil, err
			}
			var c struct{ Type string }
			_ = json.Unmarshal(sub, &c)
			if c.Type == "ByteLevel" {
				continue
			}
			if adds >= 0 {
				return nil, nil, ferr(f, "a second post-processor that adds tokens (after processors[%d]) is not supported", adds)
			}
			adds, before, after = i, b, a
		}
		return before, after, nil
	case "BertProcessing", "RobertaProcessing": // [cls] A [sep]
		var cls, sep [2]json.RawMessage
		var cid, sid int
		if json.Unmarshal(p.Cls, &cls) != nil || json.Unmarshal(cls[1], &cid) != nil {
			return nil, nil, ferr(field+".cls", "want [token, id]")
		}
		if json.Unmarshal(p.Sep, &sep) != nil || json.Unmarshal(sep[1], &sid) != nil {
			return nil, nil, ferr(field+".sep", "want [token, id]")
		}
		if err := known(field+".cls", cid); err != nil {
			return nil, nil, err
		}
		if err := known(field+".sep", sid); err != nil {
			return nil, nil, err
		}
		return []int{cid}, []int{sid}, nil
	case "TemplateProcessing":
		seen := false
		for i, piece := range p.Single {
			f := fmt.Sprintf("%s.single[%d]", field, i)
			if len(piece) != 1 {
				return nil, nil, ferr(f, "want one of SpecialToken or Sequence")
			}
			for kind, v := range piece {
				switch kind {
				case "Sequence":
					if v.ID != "A" || seen {
						return nil, nil, ferr(f, "a single template holds the sequence A once (got %q)", v.ID)
					}
					seen = true
				case "SpecialToken":
					st, ok := p.SpecialTokens[v.ID]
					if !ok {
						return nil, nil, ferr(f, "special token %q missing from special_tokens", v.ID)
					}
					if err := known(fmt.Sprintf("%s.special_tokens[%q]", field, v.ID), st.IDs...); err != nil {
						return nil, nil, err
					}
					if seen {
						after = append(after, st.IDs...)
					} else {
						before = append(before, st.IDs...)
					}
				default:
					return nil, nil, ferr(f, "unknown template piece %q", kind)
				}
			}
		}
		if !seen {
			return nil, nil, ferr(field+".single", "no sequence A")
		}
		return before, after, nil
	}
	return nil, nil, ferr(field+".type", "unsupported post_processor %q", p.Type)
}

// EncodeWithSpecialTokens returns the ids of text as Hugging Face encodes it
// with add_special_tokens=True: Encode's ids inside the special tokens that
// the file's post_processor adds to a single sequence. Llama 3.1 (and the
// current Llama 3 files) put <|begin_of_text|> first; Qwen2.5 and Qwen3 add
// nothing.
func (t *Tokenizer) EncodeWithSpecialTokens(text string) []int {
	ids := append([]int(nil), t.postBefore...)
	e := t.pool.Get().(*encoder)
	ids = e.encode(ids, nil, text)
	t.pool.Put(e)
	return append(ids, t.postAfter...)
}

// SpecialTokensAround returns the ids that EncodeWithSpecialTokens puts before
// and after the ids of the text, for callers that assemble a sequence from
// parts. The slices are copies.
func (t *Tokenizer) SpecialTokensAround() (before, after []int) {
	return append([]int(nil), t.postBefore...), append([]int(nil), t.postAfter...)
}
