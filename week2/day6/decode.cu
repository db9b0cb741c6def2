// Week 2 Day 6: flash-decoding on an NVIDIA GPU. A few query rows (one, in
// a decode step) attend to a long KV cache: the keys are split into chunks,
// one thread block per (chunk, key/value head, query row) computes a partial
// softmax state for the GROUP query heads that share the key/value head, and
// a second kernel merges the chunks' states.
//
// The launch prepends #define GROUP (query heads per key/value head) and
// #define HEAD_DIM (D); GROUP·HEAD_DIM <= 1024 and HEAD_DIM <= 128.
//
//   q       float32 [L][Hq][D]    token-major, as the q projection writes it
//   k, v    float32 [H][cap][D]   the cache; positions 0 … S-1 are valid
//   mask    float32 [L][S]        additive, read only when has_mask
//   part_o  float32 [L][Hq][splits][D]   a chunk's unnormalised output
//   part_ml float32 [L][Hq][splits][2]   its running maximum and sum
//   out     float32 [L][Hq][D]
//
// Query row i is position S - L + i; with causal, it sees keys j <= i + S - L.
// Scores are kept in base 2: q is scaled by scale·log2(e), so exp becomes
// exp2 and the maxima in part_ml are in those units.

#define LOG2E 1.4426950408889634f
#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif

// One block of 128 threads (4 warps) per (chunk, key/value head h, query
// row i): blockIdx = (chunk, h, i), gridDim.x = splits. The block's keys are
// j0 = chunk·chunk_size … min(j0 + chunk_size, S) - 1, cut further by causal.
// Start simple: each warp takes keys j0 + warp, j0 + warp + 4, …; its 32
// lanes split the D features of a key, add their products with
// __shfl_xor_sync, and keep, for each of the GROUP query heads hq = h·GROUP
// + g, a running maximum m, running sum l and output accumulator acc (its
// lanes' features) — the online softmax: when a new score s raises the
// maximum to m', multiply l and acc by exp2(m - m') first. At the end merge
// the 4 warps' states in shared memory and write, for every g, part_o (acc,
// not divided by l) and part_ml (m, l) at index (i·Hq + hq)·splits + chunk.
// A chunk with no visible key writes m = -INFINITY, l = 0, acc = 0.
extern "C" __global__ void __launch_bounds__(128) attention_decode_split(
        float* __restrict__ part_o, float* __restrict__ part_ml, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ mask,
        int L, int S, int cap, int chunk, float scale, int causal, int has_mask) {
    // Your code here (W2D6).
}

// One block per (query head hq, query row i): blockIdx = (hq, i). With M the
// largest m over the chunks, out[i][hq][e] = Σ_c part_o[c][e]·2^(m_c - M) /
// Σ_c l_c·2^(m_c - M); a chunk whose m is -INFINITY weighs 0.
extern "C" __global__ void attention_decode_reduce(float* __restrict__ out, const float* __restrict__ part_o,
                                                   const float* __restrict__ part_ml, int splits) {
    // Your code here (W2D6).
}
