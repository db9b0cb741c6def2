// The Week 3 model runner's own kernels on an NVIDIA GPU: what a step of
// many sequences needs beyond Week 2's kernels and Week 3 Day 4's paged
// attention.
//
//   qkv     float32 [T][(Hq+2H)·D]  the fused q/k/v projection, biases not yet added
//   q       float32 [T][Hq·D]       rotated queries, token-major
//   k, v    float32 [pages·page_size][H][D]   one layer of the page pool
//   pos     int32 [T]   each row's position in its sequence
//   slot    int32 [T]   each row's slot in the pool: page·page_size + position % page_size

#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif

// The q/k/v epilogue of a step, one thread per pair (i, i + D/2) of one
// head of one row (heads counted q, then k, then v): add the biases, rotate
// q and k at the row's own position (RoPE, half-split form), write q to its
// buffer and k and v into the row's slot of the pool. Every row has its own
// position, so one launch serves the prefill chunks and decodes of many
// sequences.
extern "C" __global__ void paged_qkv(float* __restrict__ q, float* __restrict__ kp, float* __restrict__ vp,
                                     const float* __restrict__ qkv, const float* __restrict__ bias,
                                     const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                                     const int* __restrict__ pos, const int* __restrict__ slot,
                                     int rows, int Hq, int H, int D, int max_pos, int slots) {
    const int half = D / 2, heads = Hq + 2 * H;
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)rows * heads * half) return;
    int i = (int)(t % half), hh = (int)((t / half) % heads), r = (int)(t / ((long long)half * heads));
    int p = pos[r], s = slot[r];
    if (p < 0 || p >= max_pos || s < 0 || s >= slots) return;  // the host checks first; never write outside
    const float* row = qkv + (size_t)r * heads * D;
    int col = hh * D + i;
    float x0 = row[col] + bias[col], x1 = row[col + half] + bias[col + half];
    if (hh < Hq + H) {
        float c = cos_t[(size_t)p * half + i], sn = sin_t[(size_t)p * half + i];
        float y0 = x0 * c - x1 * sn, y1 = x0 * sn + x1 * c;
        float* dst = hh < Hq ? q + ((size_t)r * Hq + hh) * D : kp + ((size_t)s * H + (hh - Hq)) * D;
        dst[i] = y0;
        dst[i + half] = y1;
    } else {
        float* dst = vp + ((size_t)s * H + (hh - Hq - H)) * D;
        dst[i] = x0;
        dst[i + half] = x1;
    }
}

// out[j] = x[idx[j]] for n rows of cols floats: the rows whose logits a
// step needs. Grid (ceil(cols/block), n).
extern "C" __global__ void gather_rows(float* __restrict__ out, const float* __restrict__ x,
                                       const int* __restrict__ idx, int n, int cols) {
    int j = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n || c >= cols) return;
    out[(size_t)j * cols + c] = x[(size_t)idx[j] * cols + c];
}

// next[r] = the index of the largest of logits[r][0 … n-1], the first on a
// tie (as the CPU's argmax): greedy choices for many rows, one block per
// row, so a step copies back one int32 per sequence, not its logits.
extern "C" __global__ void __launch_bounds__(1024) argmax_rows(int* __restrict__ next,
                                                               const float* __restrict__ logits, int n) {
    __shared__ float sv[1024];
    __shared__ int si[1024];
    const float* row = logits + (size_t)blockIdx.x * n;
    float best = -INFINITY;
    int bi = n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float x = row[i];
        if (bi == n || x > best) {  // strictly greater: a thread keeps the first of equal values
            best = x;
            bi = i;
        }
    }
    sv[threadIdx.x] = best;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float o = sv[threadIdx.x + s];
            int oi = si[threadIdx.x + s];
            if (o > sv[threadIdx.x] || (o == sv[threadIdx.x] && oi < si[threadIdx.x])) {
                sv[threadIdx.x] = o;
                si[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) next[blockIdx.x] = si[0] < n ? si[0] : 0;
}
