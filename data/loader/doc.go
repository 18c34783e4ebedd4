// Package loader streams fixed-shape training batches from a prepared
// dataset (see package shard), packing or padding documents, split across
// data-parallel ranks, with a resumable position that is a few integers.
//
// # Order
//
// The document order of an epoch is a pure function of (seed, epoch): the
// dataset's blocks (all shards) are permuted, consecutive runs of
// ShuffleBlocks permuted blocks form groups, and the documents of each group
// are permuted. The loader decodes one group at a time, so memory is bounded
// by ShuffleBlocks blocks and reading is sequential within a group.
//
// Rank r of w takes positions r, r+w, r+2w, ... of that order, so every
// document belongs to exactly one rank each epoch. Ranks can need different
// numbers of batches; every rank yields StepsPerEpoch(epoch) batches, the
// maximum over ranks, and a rank that runs out first yields all-padding
// batches (Batch.Filler, nothing trained) for the remainder. No document is
// dropped; EpochInfo counts the filler batches.
//
// # Rows
//
// A document of n tokens contributes n-1 (input, target) pairs: inputs
// t[0..n-2] and targets t[1..n-1], so a target never crosses a document end.
// Weight is the shard's loss mask of the target token; Target is -100
// wherever Weight is 0 (masked or padding). Pos restarts at 0 for every
// document and DocID numbers the documents of a row from 1 (0 = padding) for
// block-diagonal causal attention. One-token documents have no pairs and are
// skipped (counted).
//
// Pack mode fills the rows of a batch one after the other from a window:
// the first Window (default 128) documents of the rank's sequence not yet
// placed, within the next 2*Window positions. Each row starts with the
// oldest of them (the head), so none waits long, and is then filled best
// fit: the document with the most pairs that fits the space left, the
// earliest on ties, until none fits. A document with more than SeqLen pairs
// is cut in any case: it is taken only at the head, and when nothing fits a
// row's space it tops the row up, cut at the row's end, then fills whole
// rows; each piece restarts Pos at 0 and is placed like a document, its last
// target being the next piece's first input. With Split, a row that no
// window document fits is topped up with the head's next pairs even when
// the head would fit a row, so rows are full but a document's later piece no
// longer sees its beginning (its prefix, a chat's prompt); the default does
// not, as lengths of 300-6,000 tokens already fill 98% of 8,192-token rows
// (EpochInfo.Fill; fill_test.go measures mixes). Pad mode puts one document
// per row, truncated to SeqLen pairs (the cut pairs are counted).
//
// # Resume
//
// State (epoch, step, the window's head position in the rank's sequence,
// pairs already taken from it, a bitmask of the window documents already
// placed) is JSON-serializable and well under 1 KiB. New with a State
// continues exactly where that state was taken: the window is a pure
// function of it, rebuilt by reading the next 2*Window documents.
// A pack-mode state saved before windows (first fit, no "window") is
// refused with an error.
package loader
