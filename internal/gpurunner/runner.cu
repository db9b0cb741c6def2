// The Week 3 model runner's own kernels on an NVIDIA GPU: what a step of
// many sequences needs beyond Week 2's kernels and Week 3 Day 4's paged
// attention.
//
//   qkv     float32 [T][(Hq+2H)·D]  the fused q/k/v projection, biases not yet added
//   q       float32 [T][Hq·D]       rotated queries, token-major
//   k, v    bf16 [pages·page_size][H][D]   one layer of the page pool
//   pos     int32 [T]   each row's position in its sequence
//   slot    int32 [T]   each row's slot in the pool: page·page_size + position % page_size
//
// The pages hold bf16, half the bytes of Week 3 Day 4's float32 pages: a
// decode step of many long sequences spends most of its time reading them.
// The launch prepends #define GROUP and #define HEAD_DIM for paged_attention_bf16.

#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif
#define LOG2E 1.4426950408889634f

// bf16 is the top half of a float: widening is a shift; narrowing rounds
// to nearest even.
__device__ __forceinline__ float bf16f(unsigned short b) { return __uint_as_float(((unsigned int)b) << 16); }
__device__ __forceinline__ unsigned short f2bf(float f) {
    unsigned int u = __float_as_uint(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// The q/k/v epilogue of a step, one thread per pair (i, i + D/2) of one
// head of one row (heads counted q, then k, then v): add the biases, rotate
// q and k at the row's own position (RoPE, half-split form), write q to its
// buffer and k and v into the row's slot of the pool. Every row has its own
// position, so one launch serves the prefill chunks and decodes of many
// sequences.
extern "C" __global__ void paged_qkv(float* __restrict__ q, unsigned short* __restrict__ kp, unsigned short* __restrict__ vp,
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
        if (hh < Hq) {
            float* dst = q + ((size_t)r * Hq + hh) * D;
            dst[i] = y0;
            dst[i + half] = y1;
        } else {
            unsigned short* dst = kp + ((size_t)s * H + (hh - Hq)) * D;
            dst[i] = f2bf(y0);
            dst[i + half] = f2bf(y1);
        }
    } else {
        unsigned short* dst = vp + ((size_t)s * H + (hh - Hq - H)) * D;
        dst[i] = f2bf(x0);
        dst[i + half] = f2bf(x1);
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

#if defined(GROUP) && defined(HEAD_DIM)
// Paged attention over bf16 pages, for any mix of decode rows and prefill
// rows after a cached context (the metadata of Week 3 Day 4: tables, info,
// row_seq). One block of TILE threads per (query row, key/value head), the
// GROUP query heads of that key/value head together, the keys in tiles of
// TILE:
//   1. thread t loads key t of the tile whole (HEAD_DIM bf16, 16 bytes at a
//      time) and computes its GROUP scores against the queries in shared
//      memory; its value row goes to shared memory;
//   2. the block finds each head's tile maximum and sum (one warp shuffle
//      tree per head) and rescales the running state once per tile, not
//      once per key;
//   3. thread (d, head set) accumulates Σ p·v for its feature d from the
//      values in shared memory.
// A key costs one 16-byte load per 8 features and no shuffle of its own:
// the cost of Day 4's float32 kernel was a shuffle tree per key and head.
#define TILE 128
#define VPAD 8  // bf16 of padding per value row in shared memory: fewer bank conflicts
#define TPD (TILE / HEAD_DIM > 0 ? TILE / HEAD_DIM : 1)     // threads per feature
#define GPT ((GROUP + TPD - 1) / TPD)                        // heads per thread in step 3

//
// With splits > 1 (grid Z), block z takes the z-th of `splits` ranges of
// whole tiles of its row's keys, and writes its unnormalised sums, maximum
// and total to part (flash-decoding): a decode step of few long sequences
// still fills the GPU. paged_attention_merge combines them.
//   part    float32 [T][Hq][splits][HEAD_DIM + 2]
extern "C" __global__ void __launch_bounds__(TILE) paged_attention_bf16(
        float* __restrict__ out, float* __restrict__ part, const float* __restrict__ q,
        const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        const int* __restrict__ tables, const int* __restrict__ info, const int* __restrict__ row_seq,
        int width, int page_size, float scale) {
    const int row = blockIdx.x, h = blockIdx.y, H = gridDim.y, Hq = H * GROUP;
    const int z = blockIdx.z, splits = gridDim.z;
    const int t = threadIdx.x, lane = t % 32, warp = t / 32;
    const int s = row_seq[row];
    const int context = info[s * 3], first = info[s * 3 + 2];
    const int visible = context + (row - first) + 1;
    const int* table = tables + (size_t)s * width;
    // This block's keys: whole tiles, split as evenly as they go.
    const int tiles = (visible + TILE - 1) / TILE, per = (tiles + splits - 1) / splits;
    const int jbeg = min(visible, z * per * TILE), jend = min(visible, (z + 1) * per * TILE);

    __shared__ float sq[GROUP][HEAD_DIM];
    __shared__ float sp[GROUP][TILE];
    __shared__ __align__(16) unsigned short sv[TILE][HEAD_DIM + VPAD];
    __shared__ float wred[TILE / 32][GROUP];
    __shared__ float smax[GROUP], scorr[GROUP], ssum[GROUP];

    const float* qi = q + ((size_t)row * Hq + h * GROUP) * HEAD_DIM;
    for (int i = t; i < GROUP * HEAD_DIM; i += TILE) sq[i / HEAD_DIM][i % HEAD_DIM] = qi[i] * scale * LOG2E;
    if (t < GROUP) {
        smax[t] = -INFINITY;
        ssum[t] = 0.f;
    }
    // Step 3's outputs: feature d for heads g0, g0 + TPD, …
    const int d = t % HEAD_DIM, g0 = t / HEAD_DIM;
    const bool owner = t < TPD * HEAD_DIM;
    float acc[GPT];
#pragma unroll
    for (int i = 0; i < GPT; i++) acc[i] = 0.f;
    __syncthreads();

    for (int j0 = jbeg; j0 < jend; j0 += TILE) {
        const int j = j0 + t, n = min(TILE, jend - j0);
        float sc[GROUP];
        if (j < jend) {
            const int page = table[j / page_size];
            const size_t at = (((size_t)page * page_size + j % page_size) * H + h) * HEAD_DIM;
            const uint4* kr = (const uint4*)(k + at);
            const uint4* vr = (const uint4*)(v + at);
#pragma unroll
            for (int g = 0; g < GROUP; g++) sc[g] = 0.f;
#pragma unroll
            for (int c = 0; c < HEAD_DIM / 8; c++) {
                uint4 kw = kr[c];
                *(uint4*)&sv[t][c * 8] = vr[c];
                float kf[8] = {bf16f(kw.x & 0xffff), bf16f(kw.x >> 16), bf16f(kw.y & 0xffff), bf16f(kw.y >> 16),
                               bf16f(kw.z & 0xffff), bf16f(kw.z >> 16), bf16f(kw.w & 0xffff), bf16f(kw.w >> 16)};
#pragma unroll
                for (int g = 0; g < GROUP; g++) {
#pragma unroll
                    for (int e = 0; e < 8; e++) sc[g] += sq[g][c * 8 + e] * kf[e];
                }
            }
        } else {
#pragma unroll
            for (int g = 0; g < GROUP; g++) sc[g] = -INFINITY;
        }
        // Each head's tile maximum: a shuffle tree per warp, then the warps.
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            float x = sc[g];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
            if (lane == 0) wred[warp][g] = x;
        }
        __syncthreads();
        if (t < GROUP) {
            float mx = smax[t];
            for (int w = 0; w < TILE / 32; w++) mx = fmaxf(mx, wred[w][t]);
            scorr[t] = exp2f(smax[t] - mx);  // 0 on the first tile (smax = -inf, mx finite)
            smax[t] = mx;
        }
        __syncthreads();
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            float p = j < jend ? exp2f(sc[g] - smax[g]) : 0.f;
            sp[g][t] = p;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) p += __shfl_xor_sync(0xffffffffu, p, off);
            if (lane == 0) wred[warp][g] = p;
        }
        __syncthreads();
        if (t < GROUP) {
            float sum = 0.f;
            for (int w = 0; w < TILE / 32; w++) sum += wred[w][t];
            ssum[t] = ssum[t] * scorr[t] + sum;
        }
        if (owner) {
#pragma unroll
            for (int i = 0; i < GPT; i++) {
                const int g = g0 + i * TPD;
                if (g < GROUP) {
                    float a = acc[i] * scorr[g];
                    for (int kk = 0; kk < n; kk++) a += sp[g][kk] * bf16f(sv[kk][d]);
                    acc[i] = a;
                }
            }
        }
        __syncthreads();
    }
    if (!owner) return;
#pragma unroll
    for (int i = 0; i < GPT; i++) {
        const int g = g0 + i * TPD;
        if (g >= GROUP) continue;
        const size_t hq = (size_t)row * Hq + h * GROUP + g;
        if (splits == 1) {
            out[hq * HEAD_DIM + d] = acc[i] / ssum[g];
        } else {
            // A split with no keys leaves maximum -inf and total 0: the
            // merge weighs it 0.
            float* p = part + (hq * splits + z) * (HEAD_DIM + 2);
            p[d] = acc[i];
            if (d == 0) {
                p[HEAD_DIM] = smax[g];
                p[HEAD_DIM + 1] = ssum[g];
            }
        }
    }
}

// out = the splits of each (row, query head) merged: their sums rescaled to
// the largest maximum, over their rescaled totals. Grid (T, Hq), HEAD_DIM
// threads.
extern "C" __global__ void paged_attention_merge(float* __restrict__ out, const float* __restrict__ part, int splits) {
    const size_t hq = (size_t)blockIdx.x * gridDim.y + blockIdx.y;
    const int d = threadIdx.x;
    const float* p = part + hq * splits * (HEAD_DIM + 2);
    float mx = -INFINITY;
    for (int z = 0; z < splits; z++) mx = fmaxf(mx, p[z * (HEAD_DIM + 2) + HEAD_DIM]);
    float o = 0.f, sum = 0.f;
    for (int z = 0; z < splits; z++) {
        const float* pz = p + z * (HEAD_DIM + 2);
        float w = pz[HEAD_DIM] == -INFINITY ? 0.f : exp2f(pz[HEAD_DIM] - mx);
        o += pz[d] * w;
        sum += pz[HEAD_DIM + 1] * w;
    }
    out[hq * HEAD_DIM + d] = o / sum;
}
#endif
