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

extern "C" __global__ void __launch_bounds__(WARPS * 32) attention_decode_split(
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
