// Package tensor is the array library of tiny-llm in Go: it plays the role
// that MLX plays in the Python course.
//
// A Tensor is an n-dimensional, row-major (C order), always-contiguous array.
// Every operation is eager: it computes its result immediately and returns a
// new Tensor. There are no strides, views or lazy graphs; that keeps every
// function short enough to read in one sitting, at the price of some copies.
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
// kernel (see matmul.go and kernel.go). On amd64 (AVX2 and FMA) and arm64
// (NEON) the innermost loops run in assembly; setting TINYLLM_PORTABLE=1
// keeps the portable Go loops instead (see fastpath.go). KernelName says
// which are in use.
package tensor
