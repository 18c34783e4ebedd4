package shard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// ManifestName is the manifest file of a prepared dataset directory.
const ManifestName = "manifest.json"

// ManifestVersion is the manifest format version written and read here.
const ManifestVersion = 1

// Manifest describes a prepared dataset: its shards, the tokenizer it was
// made with, per-source counts and the configuration that made it.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	ShardVersion  int    `json:"shard_version"`
	TokenizerHash string `json:"tokenizer_hash"`
	VocabSize     int    `json:"vocab_size"`
	Docs          int64  `json:"docs"`
	Tokens        int64  `json:"tokens"`
	// Trained counts tokens whose mask bit is set.
	Trained int64         `json:"trained_tokens"`
	Shards  []ShardInfo   `json:"shards"`
	Sources []SourceCount `json:"sources"`
	// PrepConfig is the configuration that produced the dataset and
	// PrepHash a hash of it together with the tokenizer and the inputs.
	PrepConfig json.RawMessage `json:"prep_config,omitempty"`
	PrepHash   string          `json:"prep_hash,omitempty"`
	Inputs     []InputFile     `json:"inputs,omitempty"`
}

// ShardInfo is one shard of a dataset.
type ShardInfo struct {
	File    string `json:"file"` // relative to the dataset directory
	Docs    int64  `json:"docs"`
	Tokens  int64  `json:"tokens"`
	Trained int64  `json:"trained_tokens"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
}

// SourceCount holds the counts of one source; its position in
// Manifest.Sources is the source id stored in the shards.
type SourceCount struct {
	Name    string `json:"name"`
	Docs    int64  `json:"docs"`
	Tokens  int64  `json:"tokens"`
	Trained int64  `json:"trained_tokens"`
}

// InputFile identifies an input the dataset was prepared from.
type InputFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shard: %w (%s)", err, hint)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("shard: %s: %w: %v (%s)", path, ErrManifest, err, hint)
	}
	if m.FormatVersion != ManifestVersion {
		return nil, fmt.Errorf("shard: %s: %w: manifest version %d, this build reads %d (%s)",
			path, ErrVersion, m.FormatVersion, ManifestVersion, hint)
	}
	return &m, nil
}

// FileSHA256 returns the hex SHA-256 and size of a file.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("shard: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("shard: read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Dataset is an opened prepared dataset: its manifest and shards, with
// documents numbered globally across shards in manifest order.
type Dataset struct {
	Dir      string
	Manifest *Manifest
	shards   []*Reader
	base     []int64 // global index of each shard's first doc; len(shards)+1
}

// OpenOptions configures OpenDataset.
type OpenOptions struct {
	// TokenizerHash, when set, must equal the manifest's tokenizer hash.
	TokenizerHash string
	// VerifySHA256 hashes every shard file against the manifest (reads
	// everything once, several shards at a time); otherwise sizes and
	// counts are checked.
	VerifySHA256 bool
}

// OpenDataset opens the dataset in dir and checks the manifest against the
// tokenizer the caller expects and against the shards' headers.
func OpenDataset(dir string, o OpenOptions) (*Dataset, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, ManifestName)
	if o.TokenizerHash != "" && m.TokenizerHash != o.TokenizerHash {
		return nil, fmt.Errorf("shard: %s: %w: dataset made with tokenizer %s, model uses %s (%s with this tokenizer)",
			mpath, ErrTokenizer, m.TokenizerHash, o.TokenizerHash, hint)
	}
	d := &Dataset{Dir: dir, Manifest: m, base: []int64{0}}
	names := make([]string, len(m.Sources))
	for i, s := range m.Sources {
		names[i] = s.Name
	}
	fail := func(err error) (*Dataset, error) {
		d.Close()
		return nil, err
	}
	for _, si := range m.Shards {
		if si.File == "" || filepath.IsAbs(si.File) || filepath.Base(si.File) != si.File {
			return fail(fmt.Errorf("shard: %s: %w: shard file name %q", mpath, ErrManifest, si.File))
		}
	}
	if o.VerifySHA256 {
		if err := verifySHA256(dir, m.Shards); err != nil {
			return fail(err)
		}
	}
	for _, si := range m.Shards {
		path := filepath.Join(dir, si.File)
		r, err := Open(path)
		if err != nil {
			return fail(err)
		}
		d.shards = append(d.shards, r)
		if r.Size() != si.Bytes || int64(r.NumDocs()) != si.Docs || r.NumTokens() != si.Tokens ||
			r.VocabSize() != m.VocabSize || !slices.Equal(r.Sources(), names) {
			return fail(fmt.Errorf("shard: %s: %w: %s does not match its manifest entry (%s)", mpath, ErrManifest, si.File, hint))
		}
		d.base = append(d.base, d.base[len(d.base)-1]+si.Docs)
	}
	if d.NumDocs() != m.Docs {
		return fail(fmt.Errorf("shard: %s: %w: shards hold %d docs, manifest says %d", mpath, ErrManifest, d.NumDocs(), m.Docs))
	}
	return d, nil
}

// verifySHA256 hashes the shards of dir, several at a time, and returns the
// error of the first shard (in manifest order) whose hash differs from its
// manifest entry.
func verifySHA256(dir string, shards []ShardInfo) error {
	errs := make([]error, len(shards))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(shards)) {
		wg.Go(func() {
			for i := range next {
				path := filepath.Join(dir, shards[i].File)
				sum, _, err := FileSHA256(path)
				if err == nil && sum != shards[i].SHA256 {
					err = fmt.Errorf("shard: %s: %w: sha256 %s, manifest says %s (%s)", path, ErrChecksum, sum, shards[i].SHA256, hint)
				}
				errs[i] = err
			}
		})
	}
	for i := range shards {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// NumDocs returns the number of documents in all shards.
func (d *Dataset) NumDocs() int64 { return d.base[len(d.base)-1] }

// Shards returns the opened shards in manifest order.
func (d *Dataset) Shards() []*Reader { return d.shards }

// Locate maps a global document index to a shard and a local index.
func (d *Dataset) Locate(i int64) (shard, local int, err error) {
	if i < 0 || i >= d.NumDocs() {
		return 0, 0, fmt.Errorf("shard: doc %d of dataset %s: %w [0,%d)", i, d.Dir, ErrRange, d.NumDocs())
	}
	s := sort.Search(len(d.shards), func(k int) bool { return d.base[k+1] > i })
	return s, int(i - d.base[s]), nil
}

// Sources returns the source names of the dataset; DocSource indexes it.
func (d *Dataset) Sources() []string {
	names := make([]string, len(d.Manifest.Sources))
	for i, s := range d.Manifest.Sources {
		names[i] = s.Name
	}
	return names
}

// DocSource returns the source index of the document with global index i.
func (d *Dataset) DocSource(i int64) (int, error) {
	s, l, err := d.Locate(i)
	if err != nil {
		return 0, err
	}
	return d.shards[s].DocSource(l), nil
}

// Doc reads the document with global index i.
func (d *Dataset) Doc(i int64) (Doc, error) {
	s, l, err := d.Locate(i)
	if err != nil {
		return Doc{}, err
	}
	return d.shards[s].Doc(l)
}

// Close closes all shards.
func (d *Dataset) Close() error {
	var errs []error
	for _, r := range d.shards {
		errs = append(errs, r.Close())
	}
	d.shards = nil
	return errors.Join(errs...)
}
