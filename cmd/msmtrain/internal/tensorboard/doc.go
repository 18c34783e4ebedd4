// Package tensorboard writes training scalars as TensorBoard event files, so that `tensorboard --logdir RUN`
// and tools that import TensorBoard logs (W&B's sync) show msmtrain runs.
//
// An event file is a sequence of TFRecords. Each record is
//
//	uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data
//
// with mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (Castagnoli polynomial). The data of each record is a
// serialized tensorboard.Event. A file starts with an event carrying file_version "brain.Event:2", then one
// carrying SessionLog{status: START} at the writer's first step; each later event carries a Summary with one
// Summary.Value {tag, simple_value}. The field numbers, from tensorflow/tensorboard's
// tensorboard/compat/proto/event.proto and summary.proto:
//
//	Event         1: wall_time double, 2: step int64, 3: file_version string, 5: summary Summary,
//	              7: session_log SessionLog
//	SessionLog    1: status enum (START = 1)
//	Summary       1: value repeated Value
//	Summary.Value 1: tag string, 2: simple_value float
//
// simple_value is a float32: values are rounded to it, and NaN and ±Inf are written as they are. TensorBoard
// files such values under its scalars plugin without explicit plugin metadata.
//
// Files are named events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n> (TensorBoard reads every file whose
// name contains "tfevents", in name order, which is time order). A Writer only appends, and each Flush ends on a
// record boundary, so a crashed run leaves a readable file; TensorBoard also tolerates a truncated last record.
//
// A resumed run opens a new file in the same directory, with NewWriter's firstStep the first step it logs again.
// Steps replayed after a crash are then in two files, and TensorBoard shows the later ones: its data server drops
// a series' points from step s on when a later point has step s, and its Python loader (--load_fast=false), on a
// SessionLog START that is not a run's first, drops every point from the START's step on. Other readers may
// keep both copies.
package tensorboard
