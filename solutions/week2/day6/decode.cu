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

// Lanes that share one key: each holds HEAD_DIM / LANES features of it, so
// a warp works on 32 / LANES keys at once and a dot product needs only
// log2(LANES) shuffles, shared by those keys.
// LANES and UNROLL may be set before this file (the benchmark's variants).
#ifndef LANES
#define LANES (HEAD_DIM >= 64 ? 16 : 8)
#endif
#define VEC (HEAD_DIM % 4 == 0 ? 4 : 1)
#define PER ((HEAD_DIM + LANES * VEC - 1) / (LANES * VEC))
#define WARPS 4
#define GROUPS (WARPS * 32 / LANES)  // independent softmax states per block
#ifndef UNROLL
#define UNROLL 4  // keys a lane group loads before using them
#endif

__device__ __forceinline__ void load(float* dst, const float* row, int sub) {
#pragma unroll
    for (int p = 0; p < PER; p++) {
        int e = (p * LANES + sub) * VEC;
        if constexpr (VEC == 4) {
            float4 x = e < HEAD_DIM ? *(const float4*)(row + e) : make_float4(0.f, 0.f, 0.f, 0.f);
            dst[p * 4] = x.x; dst[p * 4 + 1] = x.y; dst[p * 4 + 2] = x.z; dst[p * 4 + 3] = x.w;
        } else {
            dst[p] = e < HEAD_DIM ? row[e] : 0.f;
        }
    }
}

// One chunk's softmax state for the GROUP query heads of key/value head
// blockIdx.y and query row blockIdx.z, written to part_o / part_ml.
__device__ __forceinline__ void decode_chunk(
        float* __restrict__ part_o, float* __restrict__ part_ml, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ mask,
        int L, int S, int cap, int chunk, float scale, int causal, int has_mask) {
    const int split = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    const int splits = gridDim.x, Hq = gridDim.y * GROUP;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int sub = lane % LANES, grp = warp * (32 / LANES) + lane / LANES;
    int j0 = split * chunk, j1 = min(j0 + chunk, S);
    if (causal) j1 = min(j1, i + S - L + 1);

    float qr[GROUP][PER * VEC], acc[GROUP][PER * VEC], m[GROUP], l[GROUP];
    const float* qi = q + ((size_t)i * Hq + h * GROUP) * HEAD_DIM;
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
        load(qr[g], qi + g * HEAD_DIM, sub);
#pragma unroll
        for (int e = 0; e < PER * VEC; e++) {
            qr[g][e] *= scale * LOG2E;
            acc[g][e] = 0.f;
        }
        m[g] = -INFINITY;
        l[g] = 0.f;
    }
    const float* kh = k + (size_t)h * cap * HEAD_DIM;
    const float* vh = v + (size_t)h * cap * HEAD_DIM;
    for (int base = j0; base < j1; base += GROUPS * UNROLL) {
        float kk[UNROLL][PER * VEC], vv[UNROLL][PER * VEC];
        int js[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            js[u] = base + u * GROUPS + grp;
            int j = min(js[u], j1 - 1);  // out-of-range slots load a valid row and are masked below
            load(kk[u], kh + (size_t)j * HEAD_DIM, sub);
            load(vv[u], vh + (size_t)j * HEAD_DIM, sub);
        }
        float s[UNROLL][GROUP];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            float bias = has_mask && js[u] < j1 ? mask[(size_t)i * S + js[u]] * LOG2E : 0.f;
#pragma unroll
            for (int g = 0; g < GROUP; g++) {
                float d = 0.f;
#pragma unroll
                for (int e = 0; e < PER * VEC; e++) d += qr[g][e] * kk[u][e];
#pragma unroll
                for (int off = LANES / 2; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
                s[u][g] = js[u] < j1 ? d + bias : -INFINITY;
            }
        }
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < UNROLL; u++) mx = fmaxf(mx, s[u][g]);
            if (mx == -INFINITY) continue;  // nothing visible yet
            // The maximum moved from m to mx: rescale what was summed so
            // far. Once the largest scores are seen it rarely moves.
            if (mx != m[g]) {
                float corr = exp2f(m[g] - mx);
                l[g] *= corr;
#pragma unroll
                for (int e = 0; e < PER * VEC; e++) acc[g][e] *= corr;
            }
#pragma unroll
            for (int u = 0; u < UNROLL; u++) {
                float p = exp2f(s[u][g] - mx);
                l[g] += p;
#pragma unroll
                for (int e = 0; e < PER * VEC; e++) acc[g][e] += p * vv[u][e];
            }
            m[g] = mx;
        }
    }

    // Merge the block's GROUPS states, then write one state per chunk.
    __shared__ float sm[GROUPS][GROUP][2];
    __shared__ float so[GROUPS][GROUP][HEAD_DIM];
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
#pragma unroll
        for (int p = 0; p < PER; p++)
#pragma unroll
            for (int c = 0; c < VEC; c++) {
                int e = (p * LANES + sub) * VEC + c;
                if (e < HEAD_DIM) so[grp][g][e] = acc[g][p * VEC + c];
            }
        if (sub == 0) {
            sm[grp][g][0] = m[g];
            sm[grp][g][1] = l[g];
        }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < GROUP * HEAD_DIM; t += blockDim.x) {
        int g = t / HEAD_DIM, e = t % HEAD_DIM;
        float M = -INFINITY;
        for (int w = 0; w < GROUPS; w++) M = fmaxf(M, sm[w][g][0]);
        float o = 0.f, sum = 0.f;
        for (int w = 0; w < GROUPS; w++) {
            float mw = sm[w][g][0];
            float c = mw == -INFINITY ? 0.f : exp2f(mw - M);
            o += so[w][g][e] * c;
            sum += sm[w][g][1] * c;
        }
        size_t at = ((size_t)i * Hq + h * GROUP + g) * splits + split;
        part_o[at * HEAD_DIM + e] = o;
        if (e == 0) {
            part_ml[at * 2] = M;
            part_ml[at * 2 + 1] = sum;
        }
    }
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) attention_decode_split(
        float* __restrict__ part_o, float* __restrict__ part_ml, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ mask,
        int L, int S, int cap, int chunk, float scale, int causal, int has_mask) {
    decode_chunk(part_o, part_ml, q, k, v, mask, L, S, cap, chunk, scale, causal, has_mask);
}

// The fast path: split and merge in one launch (CUDA, HEAD_DIM 32, 64 or
// 128). A decode step at 4k tokens reads only 16 MB of cache, a few
// microseconds of memory time, so a second launch (and the gap before it)
// costs as much as the reading; and attention_decode_split, which keeps
// every query head's features and accumulators in each lane, is too
// heavy in registers to keep enough loads in flight. Here a block of 8
// warps takes a chunk in sub-chunks of SUB keys:
//   1. each warp loads the rows of 4 keys, K and V (a lane holds HEAD_DIM/32
//      consecutive features: one 16-byte load per row at D = 128), and
//      computes the GROUP scores of each key; the GROUP partial sums of a
//      lane are added across the warp in 9 shuffles instead of 5·GROUP, by
//      halving the set of values at each step, so that lane l ends with the
//      score of head (l / 4) % 8;
//   2. a warp per query head turns the sub-chunk's scores into
//      probabilities against the running maximum;
//   3. each warp adds p·V of its own keys into its accumulators, which
//      stay in registers across sub-chunks; the 8 warps' accumulators are
//      added in shared memory at the end.
// Each block then writes its chunk's state as attention_decode_split does
// and counts itself done in count[i][h]; the block that finishes last for
// its (h, i) merges every chunk's state into out and resets the count to 0
// for the next launch. __threadfence makes a block's partial results
// visible to the last block before its count is; the last block reads them
// through L2 (__ldcg), never a stale L1 line. count must start at zero.
#define FUSED_SPLITS 128  // the most chunks the fused kernel merges
#define FW 8              // warps of the fused kernel
#define SUB (FW * 4)      // keys a sub-chunk
#define DV (HEAD_DIM / 32)

__device__ __forceinline__ void load_dv(float* d, const float* p) {
    if constexpr (DV == 4) {
        float4 t = __ldcs((const float4*)p);
        d[0] = t.x; d[1] = t.y; d[2] = t.z; d[3] = t.w;
    } else if constexpr (DV == 2) {
        float2 t = __ldcs((const float2*)p);
        d[0] = t.x; d[1] = t.y;
    } else {
        d[0] = __ldcs(p);
    }
}

#if HEAD_DIM % 32 == 0
extern "C" __global__ void __launch_bounds__(FW * 32, 2) attention_decode_fused(
        float* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml,
        unsigned int* __restrict__ count, const float* __restrict__ q, const float* __restrict__ k,
        const float* __restrict__ v, const float* __restrict__ mask, int L, int S, int cap, int chunk,
        float scale, int causal, int has_mask) {
    __shared__ float sp[GROUP][SUB];
    __shared__ float sm_m[GROUP], sm_l[GROUP], sm_c[GROUP];
    __shared__ float red[FW][GROUP][HEAD_DIM];
    __shared__ unsigned int last;
    __shared__ float wgt[GROUP][FUSED_SPLITS];
    __shared__ float inv[GROUP];
    const int split = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    const int splits = gridDim.x, Hq = gridDim.y * GROUP;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, e0 = lane * DV;
    int j0 = split * chunk, j1 = min(j0 + chunk, S);
    if (causal) j1 = min(j1, i + S - L + 1);

    float qr[GROUP][DV], acc[GROUP][DV];
    const float* qi = q + ((size_t)i * Hq + h * GROUP) * HEAD_DIM;
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
#pragma unroll
        for (int e = 0; e < DV; e++) {
            qr[g][e] = qi[g * HEAD_DIM + e0 + e] * (scale * LOG2E);
            acc[g][e] = 0.f;
        }
    }
    if (threadIdx.x < GROUP) {
        sm_m[threadIdx.x] = -INFINITY;
        sm_l[threadIdx.x] = 0.f;
    }
    const float* kh = k + (size_t)h * cap * HEAD_DIM + e0;
    const float* vh = v + (size_t)h * cap * HEAD_DIM + e0;
    for (int base = j0; base < j1; base += SUB) {
        // 1. Scores of keys base + warp + FW·u.
        float kk[4][DV], vv[4][DV];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int j = min(base + warp + FW * u, j1 - 1);  // past j1: a valid row, masked below
            load_dv(kk[u], kh + (size_t)j * HEAD_DIM);
            load_dv(vv[u], vh + (size_t)j * HEAD_DIM);
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float d[8];
#pragma unroll
            for (int g = 0; g < 8; g++) {
                d[g] = 0.f;
                if (g < GROUP) {
#pragma unroll
                    for (int e = 0; e < DV; e++) d[g] = fmaf(qr[g][e], kk[u][e], d[g]);
                }
            }
            const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4;
            float e4[4], e2[2], e1;
#pragma unroll
            for (int c = 0; c < 4; c++) e4[c] = (b4 ? d[c + 4] : d[c]) + __shfl_xor_sync(0xffffffffu, b4 ? d[c] : d[c + 4], 16);
#pragma unroll
            for (int c = 0; c < 2; c++) e2[c] = (b3 ? e4[c + 2] : e4[c]) + __shfl_xor_sync(0xffffffffu, b3 ? e4[c] : e4[c + 2], 8);
            e1 = (b2 ? e2[1] : e2[0]) + __shfl_xor_sync(0xffffffffu, b2 ? e2[0] : e2[1], 4);
            e1 += __shfl_xor_sync(0xffffffffu, e1, 2);
            e1 += __shfl_xor_sync(0xffffffffu, e1, 1);
            const int g = (lane >> 2) & 7, jl = warp + FW * u, j = base + jl;
            if ((lane & 3) == 0 && g < GROUP) {
                float bias = has_mask && j < j1 ? mask[(size_t)i * S + j] * LOG2E : 0.f;
                sp[g][jl] = j < j1 ? e1 + bias : -INFINITY;
            }
        }
        __syncthreads();
        // 2. Probabilities against the running maximum, one warp a head.
        for (int g = warp; g < GROUP; g += FW) {
            float s = sp[g][lane];  // SUB = 32 keys, one a lane
            float mx = s;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float mo = sm_m[g], mn = fmaxf(mo, mx);
            float p = mn == -INFINITY ? 0.f : exp2f(s - mn);
            sp[g][lane] = p;
            float sum = p;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            if (lane == 0) {
                float c = mo == -INFINITY ? 0.f : exp2f(mo - mn);
                sm_c[g] = c;
                sm_l[g] = sm_l[g] * c + sum;
                sm_m[g] = mn;
            }
        }
        __syncthreads();
        // 3. acc = acc·corr + Σ p·V over this warp's keys.
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            float c = sm_c[g];
#pragma unroll
            for (int e = 0; e < DV; e++) acc[g][e] *= c;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                float p = sp[g][warp + FW * u];
#pragma unroll
                for (int e = 0; e < DV; e++) acc[g][e] = fmaf(p, vv[u][e], acc[g][e]);
            }
        }
        __syncthreads();  // sp is rewritten by the next sub-chunk
    }

    // The warps' accumulators, added; then this chunk's state.
#pragma unroll
    for (int g = 0; g < GROUP; g++)
#pragma unroll
        for (int e = 0; e < DV; e++) red[warp][g][e0 + e] = acc[g][e];
    __syncthreads();
    for (int t = threadIdx.x; t < GROUP * HEAD_DIM; t += blockDim.x) {
        int g = t / HEAD_DIM, e = t % HEAD_DIM;
        float o = 0.f;
#pragma unroll
        for (int w = 0; w < FW; w++) o += red[w][g][e];
        size_t at = ((size_t)i * Hq + h * GROUP + g) * splits + split;
        part_o[at * HEAD_DIM + e] = o;
        if (e == 0) {
            part_ml[at * 2] = sm_m[g];
            part_ml[at * 2 + 1] = sm_l[g];
        }
    }

    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned int* c = count + (size_t)i * gridDim.y + h;
        last = atomicAdd(c, 1u) == (unsigned int)splits - 1;
        if (last) *c = 0;  // every block of this (h, i) has counted
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    // Weights 2^(m_s - M) per head and chunk, and 1 / Σ_s l_s·2^(m_s - M).
    // splits <= FUSED_SPLITS (the launch keeps it there).
    for (int g = warp; g < GROUP; g += FW) {
        const float* ml = part_ml + ((size_t)i * Hq + h * GROUP + g) * splits * 2;
        float M = -INFINITY;
        for (int s = lane; s < splits; s += 32) M = fmaxf(M, __ldcg(ml + 2 * s));
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
        float sum = 0.f;
        for (int s = lane; s < splits; s += 32) {
            float m = __ldcg(ml + 2 * s);
            float c = m == -INFINITY ? 0.f : exp2f(m - M);
            wgt[g][s] = c;
            sum += __ldcg(ml + 2 * s + 1) * c;
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (lane == 0) inv[g] = 1.f / sum;
    }
    __syncthreads();
    // Four output features per thread, summed over the chunks with 16
    // loads in flight (this block alone reads every chunk's state, so the
    // tail of the launch is as long as these loads take).
    for (int t = threadIdx.x; t < GROUP * HEAD_DIM / 4; t += blockDim.x) {
        int g = t / (HEAD_DIM / 4), e = (t % (HEAD_DIM / 4)) * 4;
        const float* po = part_o + ((size_t)i * Hq + h * GROUP + g) * splits * HEAD_DIM + e;
        float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 16
        for (int s = 0; s < splits; s++) {
            float4 p = __ldcg((const float4*)(po + (size_t)s * HEAD_DIM));
            float c = wgt[g][s];
            a.x = fmaf(p.x, c, a.x); a.y = fmaf(p.y, c, a.y); a.z = fmaf(p.z, c, a.z); a.w = fmaf(p.w, c, a.w);
        }
        float r = inv[g];
        *(float4*)(out + ((size_t)i * Hq + h * GROUP + g) * HEAD_DIM + e) = make_float4(a.x * r, a.y * r, a.z * r, a.w * r);
    }
}
#endif

// One block per (query head, query row): out = Σ_s o_s·2^(m_s - M) / Σ_s l_s·2^(m_s - M)
// with M the largest m_s. Chunks that saw no key have m_s = -inf and weigh 0.
extern "C" __global__ void attention_decode_reduce(float* __restrict__ out, const float* __restrict__ part_o,
                                                   const float* __restrict__ part_ml, int splits) {
    const int hq = blockIdx.x, i = blockIdx.y, Hq = gridDim.x;
    const size_t row = (size_t)i * Hq + hq;
    const float* ml = part_ml + row * splits * 2;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, ml[2 * s]);
    for (int e = threadIdx.x; e < HEAD_DIM; e += blockDim.x) {
        float o = 0.f, sum = 0.f;
        for (int s = 0; s < splits; s++) {
            float c = ml[2 * s] == -INFINITY ? 0.f : exp2f(ml[2 * s] - M);
            o += part_o[(row * splits + s) * HEAD_DIM + e] * c;
            sum += ml[2 * s + 1] * c;
        }
        out[row * HEAD_DIM + e] = o / sum;
    }
}
