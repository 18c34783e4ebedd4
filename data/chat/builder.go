package chat

import "strings"

// builder collects the rendered chat as text and special tokens, each marked
// trained or not, and tokenizes it in runs between special tokens.
type builder struct {
	t         *Template
	trainOnly int // -1: every assistant turn; else only this message
	run       strings.Builder
	trained   [][2]int // byte intervals of run that are trained
	ids       []int
	mask      []bool
}

// trains reports whether message i (of role) is trained on.
func (b *builder) trains(i int, role string) bool {
	return role == "assistant" && (b.trainOnly < 0 || b.trainOnly == i)
}

func (b *builder) text(s string, train bool) {
	if train && s != "" {
		b.trained = append(b.trained, [2]int{b.run.Len(), b.run.Len() + len(s)})
	}
	b.run.WriteString(s)
}

func (b *builder) special(name string, train bool) {
	b.flush()
	b.ids = append(b.ids, b.t.ids[name])
	b.mask = append(b.mask, train)
}

// flush tokenizes the pending text run. A token is trained when any of its
// bytes is, so a token that straddles a header and trained content counts
// as content.
func (b *builder) flush() {
	if b.run.Len() == 0 {
		return
	}
	ids, ends := b.t.tok.EncodeOffsets(b.run.String())
	start, k := 0, 0
	for i, id := range ids {
		end := ends[i]
		for k < len(b.trained) && b.trained[k][1] <= start {
			k++
		}
		train := k < len(b.trained) && b.trained[k][0] < end && start < b.trained[k][1]
		b.ids = append(b.ids, id)
		b.mask = append(b.mask, train)
		start = max(start, end)
	}
	b.run.Reset()
	b.trained = b.trained[:0]
}

func (b *builder) finish() ([]int, []bool) {
	b.flush()
	return b.ids, b.mask
}
