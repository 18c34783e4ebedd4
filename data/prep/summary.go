package prep

import (
	"fmt"
	"strings"
)

// MaxReasons is how many rejection reasons a Summary lists.
const MaxReasons = 10

// SourceSummary counts one source.
type SourceSummary struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Files      int    `json:"files"`
	Records    int64  `json:"records"` // non-blank lines read
	Rejected   int64  `json:"rejected"`
	Duplicates int64  `json:"duplicates"`
	Truncated  int64  `json:"truncated"`
	Split      int64  `json:"split"`
	TrainDocs  int64  `json:"train_docs"` // documents written, repeats and pieces included
	ValDocs    int64  `json:"val_docs"`
	Tokens     int64  `json:"train_tokens"`
	Trained    int64  `json:"train_trained_tokens"`
}

// Summary reports a Run.
type Summary struct {
	UpToDate       bool            `json:"-"` // nothing was rebuilt
	PrepHash       string          `json:"prep_hash"`
	InputBytes     int64           `json:"input_bytes"`
	Seconds        float64         `json:"seconds"`
	Records        int64           `json:"records"`
	Rejected       int64           `json:"rejected"`
	Reasons        []string        `json:"reasons,omitempty"` // the first MaxReasons rejections
	Duplicates     int64           `json:"duplicates"`
	Truncated      int64           `json:"truncated"`
	Split          int64           `json:"split"`
	TrainDocs      int64           `json:"train_docs"`
	TrainTokens    int64           `json:"train_tokens"`
	TrainTrained   int64           `json:"train_trained_tokens"`
	ValDocs        int64           `json:"val_docs"`
	ValTokens      int64           `json:"val_tokens"`
	MaskedFraction float64         `json:"masked_fraction"` // of train tokens, not trained
	Sources        []SourceSummary `json:"sources"`
}

// String renders the summary as a small table.
func (s *Summary) String() string {
	var b strings.Builder
	state := fmt.Sprintf("built in %.1fs (%.1f MB/s)", s.Seconds, float64(s.InputBytes)/1e6/max(s.Seconds, 1e-9))
	if s.UpToDate {
		state = "up to date, nothing rebuilt"
	}
	fmt.Fprintf(&b, "prep: %s\n", state)
	fmt.Fprintf(&b, "  records %d, rejected %d, duplicates %d, truncated %d, split %d\n",
		s.Records, s.Rejected, s.Duplicates, s.Truncated, s.Split)
	fmt.Fprintf(&b, "  train: %d docs, %d tokens, %d trained (%.1f%% masked); val: %d docs, %d tokens\n",
		s.TrainDocs, s.TrainTokens, s.TrainTrained, 100*s.MaskedFraction, s.ValDocs, s.ValTokens)
	fmt.Fprintf(&b, "  %-16s %-9s %9s %8s %6s %9s %7s %12s %12s\n",
		"source", "kind", "records", "rejected", "dups", "train", "val", "tokens", "trained")
	for _, x := range s.Sources {
		fmt.Fprintf(&b, "  %-16s %-9s %9d %8d %6d %9d %7d %12d %12d\n",
			x.Name, x.Kind, x.Records, x.Rejected, x.Duplicates, x.TrainDocs, x.ValDocs, x.Tokens, x.Trained)
	}
	for _, r := range s.Reasons {
		fmt.Fprintf(&b, "  rejected: %s\n", r)
	}
	return b.String()
}
