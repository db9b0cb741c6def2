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
    // Your code here (W2D4).
}

kernel void matmul_q4_v1(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                         const device uint* w [[buffer(2)]], const device ushort* scales [[buffer(3)]],
                         const device ushort* biases [[buffer(4)]], constant int& M [[buffer(5)]],
                         constant int& N [[buffer(6)]], constant int& K [[buffer(7)]],
                         constant int& group [[buffer(8)]], uint i [[thread_position_in_grid]]) {
    // Your code here (W2D4).
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
    // Your code here (W2D4).
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
    // Your code here (W2D4).
}
