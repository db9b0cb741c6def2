// Week 2 Day 6: flash attention for prefill on an NVIDIA GPU. (Provided.)
//
// One block per (query tile of BQ rows, query head). The tile's queries sit
// in shared memory for the whole kernel; tiles of BK keys and values stream
// through shared memory, each met with the online softmax. Under causal
// masking the key tiles past the tile's last visible key are never loaded.
// Query head hq reads key/value head hq / GROUP where it lies: nothing is
// copied per query head.
//
// The launch prepends #define GROUP and #define HEAD_DIM (<= 128).
//
//   q     float32 [L][Hq][D]      out  float32 [L][Hq][D]
//   k, v  float32 [H][cap][D]     positions 0 … S-1 valid
//   mask  float32 [L][S]          additive, read only when has_mask
//
// Query row i is position S - L + i; with causal it sees keys j <= i + S - L.

#define LOG2E 1.4426950408889634f
#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif
#define BQ 16
#define BK 32
#define TPR 8  // threads per query row: 16 rows x 8 = 128 threads
#define PAD (HEAD_DIM + 1)  // padded rows keep the threads of a warp on distinct banks
#define DPT ((HEAD_DIM + TPR - 1) / TPR)  // output features per thread

extern "C" __global__ void __launch_bounds__(BQ * TPR) attention_prefill(
        float* __restrict__ out, const float* __restrict__ q, const float* __restrict__ k,
        const float* __restrict__ v, const float* __restrict__ mask,
        int L, int S, int cap, float scale, int causal, int has_mask) {
    __shared__ float qs[BQ][PAD], ks[BK][PAD], vs[BK][HEAD_DIM], ps[BQ][BK];
    const int q0 = blockIdx.x * BQ, hq = blockIdx.y, Hq = gridDim.y, h = hq / GROUP;
    const int tid = threadIdx.x, r = tid / TPR, part = tid % TPR;
    const int i = q0 + r;  // this thread's query row
    const int rows = min(BQ, L - q0);

    for (int t = tid; t < BQ * HEAD_DIM; t += blockDim.x) {
        int rr = t / HEAD_DIM, e = t % HEAD_DIM;
        qs[rr][e] = rr < rows ? q[((size_t)(q0 + rr) * Hq + hq) * HEAD_DIM + e] * (scale * LOG2E) : 0.f;
    }
    // Causal: the tile's last row sees keys up to q0 + rows - 1 + S - L.
    int end = causal ? min(S, q0 + rows + S - L) : S;
    int limit = causal ? i + S - L : S - 1;  // last key row i sees

    float acc[DPT], m = -INFINITY, l = 0.f;
#pragma unroll
    for (int t = 0; t < DPT; t++) acc[t] = 0.f;
    const float* kh = k + (size_t)h * cap * HEAD_DIM;
    const float* vh = v + (size_t)h * cap * HEAD_DIM;

    for (int j0 = 0; j0 < end; j0 += BK) {
        __syncthreads();  // the previous tile is no longer read
        for (int t = tid; t < BK * HEAD_DIM; t += blockDim.x) {
            int c = t / HEAD_DIM, e = t % HEAD_DIM;
            bool in = j0 + c < end;
            ks[c][e] = in ? kh[(size_t)(j0 + c) * HEAD_DIM + e] : 0.f;
            vs[c][e] = in ? vh[(size_t)(j0 + c) * HEAD_DIM + e] : 0.f;
        }
        __syncthreads();
        // Scores of this row for keys part, part + TPR, ...
        float s[BK / TPR], mx = m;
#pragma unroll
        for (int u = 0; u < BK / TPR; u++) {
            int c = part + u * TPR, j = j0 + c;
            float d = 0.f;
#pragma unroll 8
            for (int e = 0; e < HEAD_DIM; e++) d += qs[r][e] * ks[c][e];
            if (has_mask && i < L && j < S) d += mask[(size_t)i * S + j] * LOG2E;
            s[u] = (j < end && j <= limit && i < L) ? d : -INFINITY;
            mx = fmaxf(mx, s[u]);
        }
        // The row's TPR threads are consecutive lanes of one warp.
#pragma unroll
        for (int off = TPR / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        float ref = mx == -INFINITY ? 0.f : mx;
        float corr = exp2f(m - ref), sum = 0.f;
#pragma unroll
        for (int u = 0; u < BK / TPR; u++) {
            float p = exp2f(s[u] - ref);
            ps[r][part + u * TPR] = p;
            sum += p;
        }
#pragma unroll
        for (int off = TPR / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        l = l * corr + sum;
        m = mx;
        __syncwarp();
#pragma unroll
        for (int t = 0; t < DPT; t++) {
            int e = part + t * TPR;
            if (e < HEAD_DIM) {
                float a = acc[t] * corr;
#pragma unroll 8
                for (int c = 0; c < BK; c++) a += ps[r][c] * vs[c][e];
                acc[t] = a;
            }
        }
    }
    if (i < L) {
        float inv = 1.f / l;
#pragma unroll
        for (int t = 0; t < DPT; t++) {
            int e = part + t * TPR;
            if (e < HEAD_DIM) out[((size_t)i * Hq + hq) * HEAD_DIM + e] = acc[t] * inv;
        }
    }
}
