// Week 2 Day 4, rungs 1 and 2: y = x·Wᵀ on an NVIDIA GPU (CUDA C++,
// compiled at run time by NVRTC).
//
//   y  float32 [M, N]   x  float32 [M, K]
//   bf16 kernels:  w  bf16 [N, K] (raw 16-bit words)
//   4-bit kernels: w  uint32 [N, K/8], eight 4-bit values a word, low nibble
//                  first; scales, biases bf16 [N, K/group];
//                  W[n][k] = q · scales[n][k/group] + biases[n][k/group]
//
// Accumulate in float32. Every thread of a launch must leave memory past the
// end of y alone.

// A bf16 is the top half of a float32: widening is a shift.
__device__ __forceinline__ float bf16_to_float(unsigned short b) {
    return __uint_as_float(((unsigned int)b) << 16);
}

// Rung 1: one thread per output y[m][n], on a 1-D grid of blocks; thread i
// computes m = i / N, n = i % N and loops over k.
extern "C" __global__ void matmul_bf16_v1(float* __restrict__ y, const float* __restrict__ x,
                                          const unsigned short* __restrict__ w, int M, int N, int K) {
    // Your code here (W2D4).
}

extern "C" __global__ void matmul_q4_v1(float* __restrict__ y, const float* __restrict__ x,
                                        const unsigned int* __restrict__ w,
                                        const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases,
                                        int M, int N, int K, int group) {
    // Your code here (W2D4).
}

// Rung 2: one warp per output. Warp `warp` of block (bx, by) computes
// y[by][bx * warps + warp]; its 32 lanes walk k together, lane j taking
// k = j, j + 32, ..., so that a warp's loads are consecutive (coalesced),
// then add their 32 partial sums with __shfl_down_sync.
extern "C" __global__ void matmul_bf16_v2(float* __restrict__ y, const float* __restrict__ x,
                                          const unsigned short* __restrict__ w, int M, int N, int K) {
    // Your code here (W2D4).
}

// 4-bit: lane j takes words j, j + 32, ... of the row (eight weights each),
// so a warp reads 128 consecutive bytes at a time.
extern "C" __global__ void matmul_q4_v2(float* __restrict__ y, const float* __restrict__ x,
                                        const unsigned int* __restrict__ w,
                                        const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases,
                                        int M, int N, int K, int group) {
    // Your code here (W2D4).
}
