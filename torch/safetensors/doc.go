// Package safetensors reads and writes the safetensors checkpoint format used
// by Hugging Face transformers, PEFT and vLLM.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON header
//
//	{"__metadata__": {"k": "v"}, "name": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}, ...}
//
// and the raw little-endian tensor data; data_offsets are relative to the
// first byte after the header.
//
// Reading maps the file read-only ([Open], [OpenModel]) and hands out
// zero-copy views of the mapping ([File.Bytes]), so a 60 GB checkpoint costs
// page cache, not a second copy in the Go heap. The header is validated in
// full on open: every failure is a [*HeaderError] naming the file.
//
// Writing is atomic (a temporary file in the destination directory, fsync,
// rename, fsync of the directory) and streaming: a [Writer] or
// [ShardedWriter] is created from the list of tensors up front, then takes
// each tensor's bytes once. [Write] and [WriteSharded] wrap them for tensors
// already in memory. Written headers list tensors in sorted name order, the
// data is contiguous in that order, and the header is padded with spaces to a
// multiple of 8 bytes, as the reference Rust crate does.
//
// The helpers [BF16FromF32], [F32FromBF16], [F16FromF32], [F32FromF16] and the
// slice conversions ([Float32sToBytes], [BytesToFloat32s], ...) convert
// between Go values and the little-endian bytes stored in files.
package safetensors
