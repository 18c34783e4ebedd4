package loader_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
)

func Example() {
	dir, err := os.MkdirTemp("", "dataset")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	w, err := shard.CreateDataset(filepath.Join(dir, "train"), shard.DatasetOptions{VocabSize: 100, Sources: []string{"s"}})
	if err != nil {
		log.Fatal(err)
	}
	w.Add([]int32{1, 2, 3, 4}, []bool{false, true, true, true}, 0)
	w.Add([]int32{5, 6, 7}, []bool{true, true, true}, 0)
	if _, err := w.Close(shard.Manifest{}); err != nil {
		log.Fatal(err)
	}
	ds, err := shard.OpenDataset(filepath.Join(dir, "train"), shard.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()

	l, err := loader.New(ds, loader.Config{SeqLen: 6, Rows: 1, Mode: loader.Pack, Seed: 1}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	b, err := l.Next()
	if err != nil {
		log.Fatal(err)
	}
	// Both documents share the row: 3 + 2 pairs, one padding slot.
	fmt.Println(l.StepsPerEpoch(0), b.Tokens, b.Trained)
	fmt.Println(len(b.Segments), b.DocID[5], b.Target[5])
	// Output:
	// 1 5 5
	// 2 0 -100
}
