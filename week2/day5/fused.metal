// Week 2 Day 5: the fused kernels you write, on an Apple GPU (Metal Shading Language,
// compiled at run time). Argument i of Device.Launch is [[buffer(i)]],
// scalars as constant references. Activations are float, row-major;
// RMSNorm weights are float vectors; all arithmetic is float.
//
//   rmsnorm      y[r] = x[r] / sqrt(mean(x[r]²) + eps) · w        one threadgroup per row
//   add_rmsnorm  h[r] += delta[r]; y[r] = rmsnorm(h[r])           one threadgroup per row
//   rope         q, k rotated in place, pairs (i, i + D/2)        one thread per pair
//   swiglu       y = gate · sigmoid(gate) · up                    one thread per element
#include <metal_stdlib>
using namespace metal;

// (Provided.) The sum of v over the threadgroup, returned to every thread;
// every thread must call it, with a `threadgroup float part[32];` declared
// at the top of the kernel. Each SIMD group adds its lanes with simd_sum,
// then the first adds the groups' sums.
static inline float group_sum(float v, threadgroup float* part, uint sg, uint sgs, uint lane) {
    v = simd_sum(v);
    if (lane == 0) part[sg] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (sg == 0) {
        v = simd_sum(lane < sgs ? part[lane] : 0.0f);
        if (lane == 0) part[0] = v;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return part[0];
}

// Task 1. Threadgroup r normalises row r: its threads stride over the row
// adding squares, group_sum gives the row's sum, and each thread writes the
// elements it read.
kernel void rmsnorm(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                    const device float* w [[buffer(2)]], constant int& rows [[buffer(3)]],
                    constant int& D [[buffer(4)]], constant float& eps [[buffer(5)]],
                    uint r [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                    uint nt [[threads_per_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                    uint sgs [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    // Your code here (W2D5).
}

// Task 2. Thread t owns pair i of one head of one token, counting the q
// heads then the k heads of each token: t = (token·(Hq + Hk) + head)·D/2 + i.
// Token `token` is number token % L of row token / L, at position
// offsets[token / L] + token % L. A position outside the table gives NaN.
kernel void rope(device float* q [[buffer(0)]], device float* k [[buffer(1)]],
                 const device float* cos_t [[buffer(2)]], const device float* sin_t [[buffer(3)]],
                 const device int* offsets [[buffer(4)]], constant int& tokens [[buffer(5)]],
                 constant int& L [[buffer(6)]], constant int& Hq [[buffer(7)]], constant int& Hk [[buffer(8)]],
                 constant int& D [[buffer(9)]], constant int& max_pos [[buffer(10)]],
                 uint t [[thread_position_in_grid]]) {
    // Your code here (W2D5).
}

// Task 3. One thread per element; exp(-g) overflows to +inf for g below
// about -88, and 1/(1 + inf) is 0, the right limit.
kernel void swiglu(device float* y [[buffer(0)]], const device float* gate [[buffer(1)]],
                   const device float* up [[buffer(2)]], constant long& n [[buffer(3)]],
                   uint i [[thread_position_in_grid]]) {
    // Your code here (W2D5).
}

// Task 4. As rmsnorm, but each thread first adds delta into h and writes
// the sum back: the residual stream lives on in h for the next layer.
kernel void add_rmsnorm(device float* y [[buffer(0)]], device float* h [[buffer(1)]],
                        const device float* delta [[buffer(2)]], const device float* w [[buffer(3)]],
                        constant int& rows [[buffer(4)]], constant int& D [[buffer(5)]],
                        constant float& eps [[buffer(6)]],
                        uint r [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                        uint nt [[threads_per_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                        uint sgs [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    // Your code here (W2D5).
}
