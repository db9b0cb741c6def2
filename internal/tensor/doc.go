// Package tensor is the array library of tiny-llm in Go: it plays the role
// that MLX plays in the Python course.
//
// A Tensor is an n-dimensional, row-major (C order), always-contiguous array.
// Every operation is eager: it computes its result immediately and returns a
// new Tensor. There are no strides, views or lazy graphs; that keeps every
// function short enough to read in one sitting, at the price of some copies.
//
// # Shared memory, and the one write
//
// Operations never modify their inputs; each returns a new Tensor with
// storage of its own, with these exceptions, which share memory instead:
//
//   - New, FromBF16 and FromF16 wrap the caller's slice; they do not copy it.
//   - Reshape, Flatten, Unflatten, ExpandDims and Squeeze return the same
//     elements under a new shape (a tensor is always contiguous, so no data
//     has to move).
//   - Data returns the tensor's own storage for a Float32 tensor, and a
//     freshly widened copy for BFloat16 and Float16 ones. Bits returns the
//     16-bit storage itself.
//
// Everything else copies, including Slice, Transpose, BroadcastTo and
// AsType (even to the same dtype). Shape returns a copy of the dimensions.
//
// Writing through Data is therefore visible to every tensor that shares the
// storage. It is fine on a tensor you have just made and not yet handed to
// anyone (fill a Zeros, then return it); anywhere else it changes someone
// else's numbers.
//
// The package itself writes into an existing tensor in exactly one place:
// SetSlice, which copies a tensor into a range of a preallocated one along
// an axis. It exists for buffers that grow step by step, such as the KV
// cache of Week 2, where copying the whole buffer for every new token would
// cost time proportional to its length.
//
// All arithmetic happens in float32. Model weights may be stored as bfloat16
// or float16 (raw 16-bit words, see FromBF16 and FromF16) to halve their
// memory; operations widen them to float32 where they are used. Matmul and
// MatmulT widen 16-bit weights a small block at a time, so a multi-gigabyte
// weight matrix is never copied whole.
//
// Shape mistakes are programming errors, so they panic with a message that
// names the operation and the shapes involved, for example
//
//	tensor.Add: shapes [2 3] and [4] do not broadcast
//
// Large operations run in parallel on a shared pool of worker goroutines
// (see parallel.go); the matrix products use a cache-blocked, register-tiled
// kernel (see matmul.go and kernel.go). On amd64 (AVX2 and FMA, and
// AVX-512 where the CPU has it) and arm64 (NEON) the innermost loops run in
// assembly; setting TINYLLM_PORTABLE=1 keeps the portable Go loops instead
// (see fastpath.go). KernelName says which are in use. MatmulPacked
// multiplies by MLX 4- and 8-bit weights without widening them
// (packed.go).
package tensor
