package shard_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/shard"
)

func Example() {
	dir, err := os.MkdirTemp("", "dataset")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ds := filepath.Join(dir, "train")

	w, err := shard.CreateDataset(ds, shard.DatasetOptions{TokenizerHash: "abc", VocabSize: 1000, Sources: []string{"spec"}})
	if err != nil {
		log.Fatal(err)
	}
	// A document: an untrained prefix token, then trained tokens.
	if err := w.Add([]int32{7, 11, 12, 13}, []bool{false, true, true, true}, 0); err != nil {
		log.Fatal(err)
	}
	if _, err := w.Close(shard.Manifest{}); err != nil {
		log.Fatal(err)
	}

	d, err := shard.OpenDataset(ds, shard.OpenOptions{TokenizerHash: "abc"})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	doc, err := d.Doc(0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.NumDocs(), doc.Tokens, doc.Mask, d.Manifest.Sources[doc.Source].Name)

	_, err = shard.OpenDataset(ds, shard.OpenOptions{TokenizerHash: "other"})
	fmt.Println(err != nil)
	// Output:
	// 1 [7 11 12 13] [false true true true] spec
	// true
}
