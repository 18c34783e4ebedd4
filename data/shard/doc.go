// Package shard reads and writes msmtrain token shards and prepared datasets.
//
// A shard (FORMAT.md beside this file) holds tokenized documents with a
// per-token loss mask and a per-document source id. Documents are grouped
// into blocks; every block is an independent zstd frame with a CRC-32C of its
// uncompressed bytes, and an index at the end of the file records where each
// block and document lies, so one document is read without decompressing the
// rest of the shard. A fixed, versioned header is checked against the file
// size on Open.
//
// A dataset is a directory of shards plus manifest.json (Manifest), written
// by DatasetWriter and opened by OpenDataset, which checks the manifest
// against the shards and against the tokenizer the caller expects.
//
// Writers stream with bounded memory (one block plus eight bytes of index per
// document) and publish files atomically: temporary file, fsync, rename.
// Readers are safe for concurrent use.
package shard
