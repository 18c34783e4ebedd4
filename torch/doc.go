// Package torch is msmtrain's Go binding to libtorch.
//
// The package links one C library, libmsmtorch (built from csrc/ by the Makefile against whichever libtorch
// third_party/libtorch.sh finds), so the same Go code runs on Debian's CPU libtorch 1.13 and on a CUDA libtorch
// 2.x: rebuild the shim, not the program.
//
// # Errors
//
// A failing op does not panic: it returns a Tensor that carries the error, and every op on such a tensor returns
// it again, so a whole forward pass can be written as plain expressions and checked once:
//
//	y := x.Matmul(w).Add(b).Silu()
//	if err := y.Err(); err != nil { ... } // "torch: matmul: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"
//
// Functions that return Go values (Float32s, Item, Backward) return an error directly.
//
// # Memory
//
// Tensors hold libtorch memory that Go's garbage collector does not see, so lifetimes are explicit: call Free, or
// create tensors inside a Scope, which frees everything created while it was open except what was kept:
//
//	s := torch.NewScope()
//	loss := model.Loss(batch)      // every intermediate tensor is tracked by s
//	s.Keep(loss)                   // loss outlives the scope (it moves to the enclosing scope, if any)
//	s.Close()                      // frees the rest
//
// LiveTensors reports how many handles are alive; tests assert it returns to its baseline.
//
// # Threads and grad mode
//
// libtorch keeps grad mode per OS thread. This package never leaves thread state set between calls: grad mode is
// a process-wide setting here (NoGrad), passed to every call, so ops may be called from any goroutine. Scopes are
// meant for one goroutine at a time (the training loop); concurrent code should Free explicitly.
package torch
