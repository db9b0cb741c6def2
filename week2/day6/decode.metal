// Week 2 Day 6: flash-decoding on an Apple GPU (Metal Shading Language).
// The same contract as decode.cu: arguments in the same order, argument i at
// [[buffer(i)]], scalars as constant references; the launch prepends
// #define GROUP and #define HEAD_DIM (<= 128).
//
//   q       float [L][Hq][D]        k, v  float [H][cap][D]
//   mask    float [L][S]            part_o float [L][Hq][splits][D]
//   part_ml float [L][Hq][splits][2] (base-2 running maximum, sum)
//
// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG, and masks are clamped
// to it.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
#define NEG (-1e30f)

// As in decode.cu: one threadgroup of 128 threads (4 SIMD groups) per
// (chunk, key/value head, query row), tg = (chunk, h, i); each SIMD group a
// running softmax state per query head of the group, merged in threadgroup
// memory; partial results at (i·Hq + hq)·splits + chunk.
kernel void attention_decode_split(device float* part_o [[buffer(0)]], device float* part_ml [[buffer(1)]],
                                   const device float* q [[buffer(2)]], const device float* k [[buffer(3)]],
                                   const device float* v [[buffer(4)]], const device float* mask [[buffer(5)]],
                                   constant int& L [[buffer(6)]], constant int& S [[buffer(7)]],
                                   constant int& cap [[buffer(8)]], constant int& chunk [[buffer(9)]],
                                   constant float& scale [[buffer(10)]], constant int& causal [[buffer(11)]],
                                   constant int& has_mask [[buffer(12)]],
                                   uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                                   uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                                   uint lane [[thread_index_in_simdgroup]]) {
    // Your code here (W2D6).
}

// One threadgroup per (query head, query row), tg = (hq, i): merge the
// chunks into out.
kernel void attention_decode_reduce(device float* out [[buffer(0)]], const device float* part_o [[buffer(1)]],
                                    const device float* part_ml [[buffer(2)]], constant int& splits [[buffer(3)]],
                                    uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                                    uint tid [[thread_index_in_threadgroup]], uint nt [[threads_per_threadgroup]]) {
    // Your code here (W2D6).
}
