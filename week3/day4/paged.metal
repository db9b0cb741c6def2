// Week 3 Day 4: paged attention on an Apple GPU (Metal Shading Language).
// The same contract as paged.cu: arguments in the same order, argument i at
// [[buffer(i)]], scalars as constant references; the launch prepends
// #define GROUP and #define HEAD_DIM (<= 128). One threadgroup of 128
// threads per (query row, key/value head), grid (T, H).
//
//   q, out   float [T][Hq][D]          k, v  float [pages][page_size][H][D]
//   tables   int [num_seqs][width]     (padded with -1, never read there)
//   info     int [num_seqs][3]         context, query rows, first row
//   row_seq  int [T]
//
// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
#define NEG (-1e30f)
#define PER ((HEAD_DIM + 31) / 32)  // features per lane
#define SIMDS 4                     // SIMD groups per threadgroup, one softmax state each

// One threadgroup of 128 threads (4 SIMD groups of 32) per (query row,
// key/value head): tg = (row, h), ntg.y = H. The same algorithm as
// paged.cu's comment describes, with simd_sum for the lanes' dot products
// and threadgroup memory for the merge. Fast math may assume no value is
// infinite: start the running maximum at the finite NEG.
kernel void paged_attention(device float* out [[buffer(0)]], const device float* q [[buffer(1)]],
                            const device float* k [[buffer(2)]], const device float* v [[buffer(3)]],
                            const device int* tables [[buffer(4)]], const device int* info [[buffer(5)]],
                            const device int* row_seq [[buffer(6)]], constant int& width [[buffer(7)]],
                            constant int& page_size [[buffer(8)]], constant float& scale [[buffer(9)]],
                            uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                            uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                            uint lane [[thread_index_in_simdgroup]]) {
    // Your code here (W3D4).
}
