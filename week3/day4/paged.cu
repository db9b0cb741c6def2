// Week 3 Day 4: paged attention on an NVIDIA GPU. Each sequence's keys and
// values stay in the pages of the pool; a block walks the sequence's block
// table and reads every key where it lies, with no dense copy.
//
// The launch prepends #define GROUP (query heads per key/value head) and
// #define HEAD_DIM (D); HEAD_DIM <= 128, GROUP <= 8.
//
//   q, out     float32 [T][Hq][D]   the step's query rows, token-major
//   k, v       float32 [pages][page_size][H][D]   one layer of the pool
//   tables     int32 [num_seqs][width]   block tables, padded with -1
//   info       int32 [num_seqs][3]   context, query rows, first row in q
//   row_seq    int32 [T]   the sequence of each query row
//
// One block of 128 threads per (query row, key/value head): grid (T, H).
// Query row r of sequence s is position context + (r - first) and sees the
// positions 0 … context + (r - first): the bottom-right causal mask. The
// same kernel serves a decode step (one row per sequence) and a prefill
// chunk after a cached context (many rows). The metadata was checked on the
// host (CheckPaged): the kernel reads only the table entries the visible
// positions need, never the padding.
//
// Scores are kept in base 2: q is scaled by scale·log2(e), so exp becomes
// exp2.

#define LOG2E 1.4426950408889634f
#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif

#define WARPS 4
// Features of a key each lane holds: the warp's 32 lanes share one key.
#define PER ((HEAD_DIM + 31) / 32)

// One block of 128 threads (4 warps) per (query row, key/value head h):
// blockIdx = (row, h), gridDim.y = H. Find the row's sequence s = row_seq[row]
// and its context, first row (info[s*3], info[s*3+2]); the row sees
// positions j = 0 … context + (row - first). Position j lives in page
// tables[s*width + j/page_size], slot j % page_size: its keys for head h
// start at ((page·page_size + slot)·H + h)·HEAD_DIM. Start simple: each warp
// takes positions warp, warp + 4, …; its 32 lanes split the D features of a
// key, add their products with __shfl_xor_sync, and keep for each of the
// GROUP query heads h·GROUP + g a running maximum m, sum l and output
// accumulator acc (the online softmax, in base 2: scale q by scale·log2(e)
// and use exp2f). At the end merge the 4 warps' states in shared memory and
// write out[row][h·GROUP + g][e] = acc / l. Read no table entry past the
// ones the visible positions need: the rest is padding (-1).
extern "C" __global__ void __launch_bounds__(WARPS * 32) paged_attention(
        float* __restrict__ out, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v,
        const int* __restrict__ tables, const int* __restrict__ info, const int* __restrict__ row_seq,
        int width, int page_size, float scale) {
    // Your code here (W3D4).
}
