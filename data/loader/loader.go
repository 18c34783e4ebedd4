package loader

import (
	"errors"
	"fmt"
	"sync"

	"github.com/msmtrain/msmtrain/data/shard"
)

// Mode chooses how documents fill rows.
type Mode string

// Modes.
const (
	Pack Mode = "pack" // several documents per row, chosen from a window
	Pad  Mode = "pad"  // one document per row, truncated and padded
)

// Config configures a Loader.
type Config struct {
	SeqLen int  // pairs (positions) per row
	Rows   int  // rows per micro-batch
	Mode   Mode // Pack or Pad
	Seed   uint64
	Rank   int
	World  int
	// ShuffleBlocks is the number of blocks whose documents are shuffled
	// together (default 8); it bounds the decoded data held in memory.
	ShuffleBlocks int
	// Prefetch is the number of batches built ahead (default 2).
	Prefetch int
	// Window is the number of upcoming documents pack mode chooses from to
	// fill a row (default DefaultWindow; 1 packs in order). Ignored in pad
	// mode.
	Window int
	// Split tops up a row that no window document fits by cutting the
	// oldest one at the row's end (pack mode): rows are full, at the cost of
	// documents whose second piece no longer sees its beginning. Without it
	// only documents longer than a row are cut (also to top a row up).
	Split bool
	// Examples, when positive, makes each batch hold exactly this many
	// documents (the stream's next ones), packed into as many rows as they
	// need: Rows no longer applies (see examples.go). Pack mode only.
	Examples int
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = Pack
	}
	if c.World == 0 {
		c.World = 1
	}
	if c.ShuffleBlocks == 0 {
		c.ShuffleBlocks = 8
	}
	if c.Prefetch == 0 {
		c.Prefetch = 2
	}
	if c.Mode == Pad || c.Examples > 0 {
		c.Window, c.Split = 0, false
	} else if c.Window == 0 {
		c.Window = DefaultWindow
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.SeqLen <= 0:
		return fmt.Errorf("loader: seq_len %d must be positive", c.SeqLen)
	case c.Rows <= 0:
		return fmt.Errorf("loader: rows %d must be positive", c.Rows)
	case c.Mode != Pack && c.Mode != Pad:
		return fmt.Errorf("loader: mode %q, want %q or %q", c.Mode, Pack, Pad)
	case c.World <= 0 || c.Rank < 0 || c.Rank >= c.World:
		return fmt.Errorf("loader: rank %d of world %d", c.Rank, c.World)
	case c.ShuffleBlocks <= 0 || c.Prefetch < 0:
		return fmt.Errorf("loader: shuffle_blocks %d, prefetch %d", c.ShuffleBlocks, c.Prefetch)
	case c.Examples < 0 || (c.Examples > 0 && c.Mode != Pack):
		return fmt.Errorf("loader: examples %d in mode %q: want a positive count in pack mode, or 0", c.Examples, c.Mode)
	case c.Mode == Pack && c.Examples == 0 && (c.Window < 1 || c.Window > MaxWindow):
		return fmt.Errorf("loader: window %d, want 1 to %d", c.Window, MaxWindow)
	}
	return nil
}

// State is a resumable position: the batch a Loader yields next is the
// first batch built from it. The last fields identify the run it belongs
// to and must match the Config it is resumed with.
type State struct {
	Epoch  int   `json:"epoch"`
	Step   int   `json:"step"`   // batches this rank yielded in the epoch
	Pos    int64 `json:"pos"`    // oldest position in this rank's document sequence not wholly placed
	Offset int   `json:"offset"` // pairs already taken from the document at Pos
	// Taken marks the documents after Pos already placed (pack mode): hex
	// digits of four bits each, bit i (the lowest of digit i/4 first) for
	// position Pos+1+i, trailing zero digits dropped.
	Taken string `json:"taken,omitempty"`

	Seed          uint64 `json:"seed"`
	Rank          int    `json:"rank"`
	World         int    `json:"world"`
	SeqLen        int    `json:"seq_len"`
	Rows          int    `json:"rows"`
	Mode          Mode   `json:"mode"`
	ShuffleBlocks int    `json:"shuffle_blocks"`
	Window        int    `json:"window,omitempty"` // pack mode; 0 in a state saved before windows (first-fit)
	Split         bool   `json:"split,omitempty"`
	Examples      int    `json:"examples,omitempty"`
}

// Segment records one document piece placed in a batch.
type Segment struct {
	Row, Start, Len int   // row and slot range [Start, Start+Len)
	Doc             int64 // global document index in the dataset
	Offset          int   // first pair of the document in this piece
}

// Batch is one micro-batch of Rows x SeqLen slots, row-major.
type Batch struct {
	Rows, SeqLen int
	Input        []int32
	Target       []int32   // next token, or IgnoreIndex where Weight is 0
	Weight       []float32 // 1 where the target token is trained
	Pos          []int32   // position within the document piece
	DocID        []int32   // 1.. per document within a row; 0 is padding
	Segments     []Segment
	Tokens       int  // slots holding a document
	Trained      int  // slots with Weight 1
	Filler       bool // all padding: this rank had no documents left
	Epoch, Step  int
	// Next is the state after this batch.
	Next State
}

func newBatch(rows, seqLen int) *Batch {
	n := rows * seqLen
	b := &Batch{Rows: rows, SeqLen: seqLen, Input: make([]int32, n), Target: make([]int32, n),
		Weight: make([]float32, n), Pos: make([]int32, n), DocID: make([]int32, n)}
	for i := range b.Target {
		b.Target[i] = IgnoreIndex
	}
	return b
}

// EpochInfo describes one epoch for this loader's rank.
type EpochInfo struct {
	Steps         int   // batches every rank yields
	Docs          int64 // documents of this rank
	FillerBatches int   // all-padding batches this rank yields at the end
	SkippedDocs   int64 // one-token documents (no pairs)
	Truncated     int64 // pairs cut by pad mode
	Tokens        int64 // slots holding a document in this rank's batches
	// Fill is the fraction of the slots of the epoch's Steps batches, all
	// ranks together, that hold a document (EmptyRows count as empty).
	Fill float64
	// EmptyRows counts the rows of the epoch's Steps batches, all ranks
	// together, that hold no document (the rest of the last batch, filler
	// batches): forward and backward passes over padding alone.
	EmptyRows int64
	// Rows counts all the rows of the epoch's Steps batches, all ranks
	// together (in examples mode they vary per batch).
	Rows int64
}

// ErrEmpty reports a dataset with nothing to train.
var ErrEmpty = errors.New("loader: dataset has no document with two or more tokens")

// Loader yields batches from a background goroutine. Next and State are
// meant for one goroutine; Close stops the producer.
type Loader struct {
	ds    *shard.Dataset
	cfg   Config
	all   []blockRef
	state State // after the last batch returned by Next

	mu     sync.Mutex
	epochs map[int]EpochInfo

	ch       chan result
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	err      error
}

type result struct {
	b   *Batch
	err error
}

// New starts a loader over ds at from, or at the beginning when from is nil.
func New(ds *shard.Dataset, cfg Config, from *State) (*Loader, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Loader{ds: ds, cfg: cfg, all: allBlocks(ds), epochs: map[int]EpochInfo{}}
	l.state = l.initial()
	if from != nil {
		if err := l.check(*from); err != nil {
			return nil, err
		}
		l.state = *from
	}
	info, err := l.Epoch(l.state.Epoch)
	if err != nil {
		return nil, err
	}
	if info.Steps == 0 {
		return nil, ErrEmpty
	}
	l.ch = make(chan result, cfg.Prefetch)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	go l.produce(l.state)
	return l, nil
}

func (l *Loader) initial() State {
	c := l.cfg
	return State{Seed: c.Seed, Rank: c.Rank, World: c.World, SeqLen: c.SeqLen, Rows: c.Rows, Mode: c.Mode,
		ShuffleBlocks: c.ShuffleBlocks, Window: c.Window, Split: c.Split, Examples: c.Examples}
}

// check validates a state against the configuration and the dataset.
func (l *Loader) check(s State) error {
	want := l.initial()
	got := s
	got.Epoch, got.Step, got.Pos, got.Offset, got.Taken = 0, 0, 0, 0, ""
	if s.Mode == Pack && s.Window == 0 && s.Examples == 0 && want.Mode == Pack && want.Examples == 0 {
		return fmt.Errorf("loader: state %+v was saved by the first-fit packer of an earlier version, which this "+
			"one cannot continue exactly: finish the stage with that version, or start it over", s)
	}
	if got != want {
		return fmt.Errorf("loader: state %+v was saved by another configuration (%+v)", got, want)
	}
	if s.Epoch < 0 || s.Step < 0 || s.Pos < 0 || s.Offset < 0 {
		return fmt.Errorf("loader: negative field in state %+v", s)
	}
	c := newCursor(newEpochOrder(l.ds, l.all, s.Seed, s.Epoch, s.ShuffleBlocks), s.Rank, s.World)
	n := c.count()
	if s.Pos > n || (s.Pos == n && s.Offset != 0) {
		return fmt.Errorf("loader: state position %d beyond the %d documents of rank %d", s.Pos, n, s.Rank)
	} else if s.Pos < n && s.Offset > 0 && s.Offset >= c.at(s.Pos).length-1 {
		return fmt.Errorf("loader: state offset %d beyond document at position %d", s.Offset, s.Pos)
	}
	bits, err := decodeTaken(s.Taken)
	if err != nil {
		return err
	}
	for len(bits) > 0 && !bits[len(bits)-1] {
		bits = bits[:len(bits)-1]
	}
	if len(bits) > 0 && (s.Mode != Pack || int64(len(bits)) >= 2*int64(s.Window) || s.Pos+int64(len(bits)) >= n) {
		return fmt.Errorf("loader: state taken %q beyond the window at position %d", s.Taken, s.Pos)
	}
	return nil
}

// Epoch sizes an epoch by packing every rank's document lengths (read from
// the shard indexes, no data is decoded). Results are cached.
func (l *Loader) Epoch(epoch int) (EpochInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if info, ok := l.epochs[epoch]; ok {
		return info, nil
	}
	o := newEpochOrder(l.ds, l.all, l.cfg.Seed, epoch, l.cfg.ShuffleBlocks)
	pk := &packer{cfg: l.cfg}
	var mine EpochInfo
	steps, rows, tokens := 0, int64(0), int64(0)
	perRank := make([]int, l.cfg.World) // batches with documents
	for r := range l.cfg.World {
		c := newCursor(o, r, l.cfg.World)
		var ps packStats
		st, n := State{}, 0
		for {
			next, placed, err := pk.build(c, st, nil, &ps)
			if err != nil {
				return EpochInfo{}, err
			}
			if !placed {
				break
			}
			st, n = next, n+1
		}
		steps = max(steps, n)
		perRank[r] = n
		rows += ps.rows
		tokens += ps.tokens
		if r == l.cfg.Rank {
			mine = EpochInfo{Steps: n, Docs: c.count(), SkippedDocs: ps.skipped, Truncated: ps.truncated, Tokens: ps.tokens}
		}
	}
	mine.FillerBatches = steps - mine.Steps
	mine.Steps = steps
	fillers := int64(0)
	for _, n := range perRank {
		fillers += int64(steps - n)
	}
	slots := int64(steps) * int64(l.cfg.Rows) * int64(l.cfg.World)
	if l.cfg.Examples > 0 { // rows vary: a filler batch has one row
		slots = rows + fillers
	}
	mine.EmptyRows = slots - rows
	mine.Rows = slots
	if steps > 0 {
		mine.Fill = float64(tokens) / (float64(slots) * float64(l.cfg.SeqLen))
	}
	l.epochs[epoch] = mine
	return mine, nil
}

// StepsPerEpoch returns the number of batches every rank yields in epoch.
func (l *Loader) StepsPerEpoch(epoch int) int {
	info, _ := l.Epoch(epoch)
	return info.Steps
}

// BatchAt builds the batch that a loader at state s yields next,
// synchronously and without touching the loader's own position.
func (l *Loader) BatchAt(s State) (*Batch, error) {
	if err := l.check(s); err != nil {
		return nil, err
	}
	g := &gen{l: l, pk: &packer{cfg: l.cfg}}
	return g.next(s)
}

// gen builds consecutive batches, reusing the cursor of the current epoch.
type gen struct {
	l  *Loader
	pk *packer
	c  *cursor
}

func (g *gen) next(s State) (*Batch, error) {
	info, err := g.l.Epoch(s.Epoch)
	if err != nil {
		return nil, err
	}
	if s.Step >= info.Steps {
		s.Epoch, s.Step, s.Pos, s.Offset, s.Taken = s.Epoch+1, 0, 0, 0, ""
		if _, err := g.l.Epoch(s.Epoch); err != nil {
			return nil, err
		}
	}
	if g.c == nil || g.c.o.epoch != s.Epoch {
		g.c = newCursor(newEpochOrder(g.l.ds, g.l.all, s.Seed, s.Epoch, s.ShuffleBlocks), s.Rank, s.World)
	}
	b := &Batch{} // sized by examples mode
	if g.l.cfg.Examples == 0 {
		b = newBatch(g.l.cfg.Rows, g.l.cfg.SeqLen)
	}
	var ps packStats
	next, placed, err := g.pk.build(g.c, s, b, &ps) // examples mode resizes b
	if err != nil {
		return nil, err
	}
	b.Epoch, b.Step = s.Epoch, s.Step
	b.Filler = !placed
	next.Step = s.Step + 1
	b.Next = next
	return b, nil
}

func (l *Loader) produce(s State) {
	defer close(l.done)
	g := &gen{l: l, pk: &packer{cfg: l.cfg}}
	for {
		b, err := g.next(s)
		select {
		case l.ch <- result{b, err}:
		case <-l.stop:
			return
		}
		if err != nil {
			return
		}
		s = b.Next
	}
}

// Next returns the next batch. After an error the loader is done.
func (l *Loader) Next() (*Batch, error) {
	if l.err != nil {
		return nil, l.err
	}
	var r result
	select {
	case r = <-l.ch:
	case <-l.done:
		select { // a batch or error sent just before the producer stopped
		case r = <-l.ch:
		default:
			r.err = errors.New("loader: closed")
		}
	}
	if r.err != nil {
		l.err = r.err
		return nil, r.err
	}
	l.state = r.b.Next
	return r.b, nil
}

// State returns the position after the last batch Next returned.
func (l *Loader) State() State { return l.state }

// Config returns the configuration with defaults filled in.
func (l *Loader) Config() Config { return l.cfg }

// Close stops the producer. It does not close the dataset.
func (l *Loader) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	return nil
}
