package prep

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/data/chat"
)

// FuzzRecord feeds arbitrary lines to the record parser of both kinds: it
// must reject or accept, never panic, and what it accepts must respect
// max_len and carry a mask of the same length.
func FuzzRecord(f *testing.F) {
	for _, name := range []string{"docs.jsonl", "chats.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f.Add(sc.Bytes(), name == "chats.jsonl")
		}
	}
	_, tok := setup(f)
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		f.Fatal(err)
	}
	cfg := Config{MaxLen: 32, Overlong: "split"}
	enc := &encoder{cfg: &cfg, tok: tok, tmpl: tmpl, eos: int32(tmpl.EOS()), prefix: []int32{1, 2}}
	f.Fuzz(func(t *testing.T, line []byte, chats bool) {
		kind := KindDocuments
		if chats {
			kind = KindChats
		}
		p := enc.process(kind, line)
		if p.err != nil {
			return
		}
		if len(p.pieces) == 0 || len(p.pieces) != len(p.masks) {
			t.Fatalf("%d pieces, %d masks", len(p.pieces), len(p.masks))
		}
		for i, piece := range p.pieces {
			if len(piece) == 0 || len(piece) > cfg.MaxLen || len(piece) != len(p.masks[i]) {
				t.Fatalf("piece %d: %d tokens, %d mask bits", i, len(piece), len(p.masks[i]))
			}
		}
	})
}
