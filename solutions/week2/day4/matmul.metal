// Week 2 Day 4, rungs 1 and 2: y = x·Wᵀ on an Apple GPU (Metal Shading
// Language, compiled at run time). Argument i of Device.Launch is
// [[buffer(i)]], scalars as constant references.
//
//   y  float [M, N]   x  float [M, K]
//   bf16 kernels:  w  bf16 [N, K] (raw 16-bit words)
//   4-bit kernels: w  uint [N, K/8], eight 4-bit values a word, low nibble
//                  first; scales, biases bf16 [N, K/group];
//                  W[n][k] = q · scales[n][k/group] + biases[n][k/group]
//
// Accumulate in float. Every thread must leave memory past the end of y alone.
#include <metal_stdlib>
using namespace metal;

// A bf16 is the top half of a float: widening is a shift.
static inline float bf16_to_float(ushort b) { return as_type<float>(uint(b) << 16); }

// Rung 1: one thread per output y[m][n]; thread i computes m = i / N,
// n = i % N and loops over k.
kernel void matmul_bf16_v1(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                           const device ushort* w [[buffer(2)]], constant int& M [[buffer(3)]],
                           constant int& N [[buffer(4)]], constant int& K [[buffer(5)]],
                           uint i [[thread_position_in_grid]]) {
    if (i >= uint(M) * uint(N)) return;
    uint m = i / uint(N), n = i % uint(N);
    const device float* xr = x + ulong(m) * K;
    const device ushort* wr = w + ulong(n) * K;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += xr[k] * bf16_to_float(wr[k]);
    y[ulong(m) * N + n] = acc;
}

kernel void matmul_q4_v1(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                         const device uint* w [[buffer(2)]], const device ushort* scales [[buffer(3)]],
                         const device ushort* biases [[buffer(4)]], constant int& M [[buffer(5)]],
                         constant int& N [[buffer(6)]], constant int& K [[buffer(7)]],
                         constant int& group [[buffer(8)]], uint i [[thread_position_in_grid]]) {
    if (i >= uint(M) * uint(N)) return;
    uint m = i / uint(N), n = i % uint(N);
    const device float* xr = x + ulong(m) * K;
    const device uint* wr = w + ulong(n) * (K / 8);
    const device ushort* sr = scales + ulong(n) * (K / group);
    const device ushort* br = biases + ulong(n) * (K / group);
    float acc = 0.0f;
    for (int k = 0; k < K; k++) {
        float q = float((wr[k / 8] >> (4 * (k % 8))) & 15u);
        acc += xr[k] * (q * bf16_to_float(sr[k / group]) + bf16_to_float(br[k / group]));
    }
    y[ulong(m) * N + n] = acc;
}

// Rung 2: one SIMD group (32 threads) per output. SIMD group sg of
// threadgroup (tx, ty) computes y[ty][tx * groups + sg]; its lanes walk k
// together, lane j taking k = j, j + 32, ..., and simd_sum adds their
// partial sums.
kernel void matmul_bf16_v2(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                           const device ushort* w [[buffer(2)]], constant int& M [[buffer(3)]],
                           constant int& N [[buffer(4)]], constant int& K [[buffer(5)]],
                           uint2 tg [[threadgroup_position_in_grid]],
                           uint sg [[simdgroup_index_in_threadgroup]],
                           uint sgs [[simdgroups_per_threadgroup]],
                           uint lane [[thread_index_in_simdgroup]]) {
    int n = int(tg.x * sgs + sg), m = int(tg.y);
    if (n >= N || m >= M) return;  // the whole SIMD group leaves together
    const device float* xr = x + ulong(m) * K;
    const device ushort* wr = w + ulong(n) * K;
    float acc = 0.0f;
    for (int k = int(lane); k < K; k += 32) acc += xr[k] * bf16_to_float(wr[k]);
    acc = simd_sum(acc);
    if (lane == 0) y[ulong(m) * N + n] = acc;
}

kernel void matmul_q4_v2(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                         const device uint* w [[buffer(2)]], const device ushort* scales [[buffer(3)]],
                         const device ushort* biases [[buffer(4)]], constant int& M [[buffer(5)]],
                         constant int& N [[buffer(6)]], constant int& K [[buffer(7)]],
                         constant int& group [[buffer(8)]],
                         uint2 tg [[threadgroup_position_in_grid]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint sgs [[simdgroups_per_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
    int n = int(tg.x * sgs + sg), m = int(tg.y);
    if (n >= N || m >= M) return;
    const device float* xr = x + ulong(m) * K;
    const device uint* wr = w + ulong(n) * (K / 8);
    const device ushort* sr = scales + ulong(n) * (K / group);
    const device ushort* br = biases + ulong(n) * (K / group);
    float acc = 0.0f;
    for (int j = int(lane); j < K / 8; j += 32) {
        uint word = wr[j];
        float s = bf16_to_float(sr[j * 8 / group]), b = bf16_to_float(br[j * 8 / group]);
        const device float* xk = xr + j * 8;
        for (int t = 0; t < 8; t++) acc += xk[t] * (float((word >> (4 * t)) & 15u) * s + b);
    }
    acc = simd_sum(acc);
    if (lane == 0) y[ulong(m) * N + n] = acc;
}
