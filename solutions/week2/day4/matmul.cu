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
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)M * N) return;
    int m = (int)(i / N), n = (int)(i % N);
    const float* xr = x + (size_t)m * K;
    const unsigned short* wr = w + (size_t)n * K;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += xr[k] * bf16_to_float(wr[k]);
    y[(size_t)m * N + n] = acc;
}

extern "C" __global__ void matmul_q4_v1(float* __restrict__ y, const float* __restrict__ x,
                                        const unsigned int* __restrict__ w,
                                        const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases,
                                        int M, int N, int K, int group) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)M * N) return;
    int m = (int)(i / N), n = (int)(i % N);
    const float* xr = x + (size_t)m * K;
    const unsigned int* wr = w + (size_t)n * (K / 8);
    const unsigned short* sr = scales + (size_t)n * (K / group);
    const unsigned short* br = biases + (size_t)n * (K / group);
    float acc = 0.0f;
    for (int k = 0; k < K; k++) {
        float q = (float)((wr[k / 8] >> (4 * (k % 8))) & 15u);
        acc += xr[k] * (q * bf16_to_float(sr[k / group]) + bf16_to_float(br[k / group]));
    }
    y[(size_t)m * N + n] = acc;
}

// Rung 2: one warp per output. Warp `warp` of block (bx, by) computes
// y[by][bx * warps + warp]; its 32 lanes walk k together, lane j taking
// k = j, j + 32, ..., so that a warp's loads are consecutive (coalesced),
// then add their 32 partial sums with __shfl_down_sync.
extern "C" __global__ void matmul_bf16_v2(float* __restrict__ y, const float* __restrict__ x,
                                          const unsigned short* __restrict__ w, int M, int N, int K) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int n = blockIdx.x * (blockDim.x / 32) + warp, m = blockIdx.y;
    if (n >= N || m >= M) return;  // the whole warp leaves together
    const float* xr = x + (size_t)m * K;
    const unsigned short* wr = w + (size_t)n * K;
    float acc = 0.0f;
    for (int k = lane; k < K; k += 32) acc += xr[k] * bf16_to_float(wr[k]);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) y[(size_t)m * N + n] = acc;
}

// 4-bit: lane j takes words j, j + 32, ... of the row (eight weights each),
// so a warp reads 128 consecutive bytes at a time.
extern "C" __global__ void matmul_q4_v2(float* __restrict__ y, const float* __restrict__ x,
                                        const unsigned int* __restrict__ w,
                                        const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases,
                                        int M, int N, int K, int group) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int n = blockIdx.x * (blockDim.x / 32) + warp, m = blockIdx.y;
    if (n >= N || m >= M) return;
    const float* xr = x + (size_t)m * K;
    const unsigned int* wr = w + (size_t)n * (K / 8);
    const unsigned short* sr = scales + (size_t)n * (K / group);
    const unsigned short* br = biases + (size_t)n * (K / group);
    float acc = 0.0f;
    for (int j = lane; j < K / 8; j += 32) {
        unsigned int word = wr[j];
        float s = bf16_to_float(sr[j * 8 / group]), b = bf16_to_float(br[j * 8 / group]);
        const float* xk = xr + j * 8;
#pragma unroll
        for (int t = 0; t < 8; t++) acc += xk[t] * ((float)((word >> (4 * t)) & 15u) * s + b);
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) y[(size_t)m * N + n] = acc;
}
