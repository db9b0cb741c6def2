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

extern "C" __global__ void __launch_bounds__(WARPS * 32) paged_attention(
        float* __restrict__ out, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v,
        const int* __restrict__ tables, const int* __restrict__ info, const int* __restrict__ row_seq,
        int width, int page_size, float scale) {
    const int row = blockIdx.x, h = blockIdx.y, H = gridDim.y, Hq = H * GROUP;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int s = row_seq[row];
    const int context = info[s * 3], first = info[s * 3 + 2];
    const int visible = context + (row - first) + 1;
    const int* table = tables + (size_t)s * width;

    float qr[GROUP][PER], acc[GROUP][PER], m[GROUP], l[GROUP];
    const float* qi = q + ((size_t)row * Hq + h * GROUP) * HEAD_DIM;
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
#pragma unroll
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + lane;
            qr[g][p] = e < HEAD_DIM ? qi[g * HEAD_DIM + e] * scale * LOG2E : 0.f;
            acc[g][p] = 0.f;
        }
        m[g] = -INFINITY;
        l[g] = 0.f;
    }
    // Warp w takes positions w, w + WARPS, …: consecutive warps read
    // consecutive slots of a page.
    for (int j = warp; j < visible; j += WARPS) {
        const int page = table[j / page_size], slot = j % page_size;
        const size_t at = (((size_t)page * page_size + slot) * H + h) * HEAD_DIM;
        float kk[PER], vv[PER];
#pragma unroll
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + lane;
            kk[p] = e < HEAD_DIM ? k[at + e] : 0.f;
            vv[p] = e < HEAD_DIM ? v[at + e] : 0.f;
        }
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            float d = 0.f;
#pragma unroll
            for (int p = 0; p < PER; p++) d += qr[g][p] * kk[p];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
            // Online softmax: the maximum moves from m to mx, and what was
            // summed so far is rescaled by 2^(m - mx).
            float mx = fmaxf(m[g], d);
            float corr = exp2f(m[g] - mx);  // 0 on the first key (m = -inf)
            float w = exp2f(d - mx);
            l[g] = l[g] * corr + w;
#pragma unroll
            for (int p = 0; p < PER; p++) acc[g][p] = acc[g][p] * corr + w * vv[p];
            m[g] = mx;
        }
    }

    // Merge the WARPS states of the block.
    __shared__ float sm[WARPS][GROUP][2];
    __shared__ float so[WARPS][GROUP][HEAD_DIM];
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
#pragma unroll
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + lane;
            if (e < HEAD_DIM) so[warp][g][e] = acc[g][p];
        }
        if (lane == 0) {
            sm[warp][g][0] = m[g];
            sm[warp][g][1] = l[g];
        }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < GROUP * HEAD_DIM; t += blockDim.x) {
        int g = t / HEAD_DIM, e = t % HEAD_DIM;
        float M = -INFINITY;
        for (int w = 0; w < WARPS; w++) M = fmaxf(M, sm[w][g][0]);
        float o = 0.f, sum = 0.f;
        for (int w = 0; w < WARPS; w++) {
            float mw = sm[w][g][0];
            float c = mw == -INFINITY ? 0.f : exp2f(mw - M);  // a warp that saw no key weighs 0
            o += so[w][g][e] * c;
            sum += sm[w][g][1] * c;
        }
        out[((size_t)row * Hq + h * GROUP + g) * HEAD_DIM + e] = o / sum;
    }
}
