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
#pragma unroll
        for (int e = 0; e < DV; e++) d[e] = __ldcs(p + e);  // HEAD_DIM 32 or 96
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

// The Hopper path (compute capability 9.0 and later, HEAD_DIM a multiple of
// 32): attention_decode_fused keeps its next keys in registers and waits
// for them sub-chunk by sub-chunk, a round trip to memory each time, and
// its warps meet at three barriers per sub-chunk. Here the bytes go
// straight to shared memory with the copy engine (cp.async.bulk): the
// chunk is cut into tiles of ST keys (64 in Decode's build); one thread
// issues the copies of the first SST tiles (K and V, each tile one
// contiguous run of rows) before any arithmetic, and each tile's arrival is
// signalled on an mbarrier, so a block has up to SST tiles in flight (128
// KB at HEAD_DIM 128 with Decode's 2 tiles of 64 keys) while it works on
// the tiles that have arrived; a consumed tile's buffer is refilled with
// the tile SST further on. Decode gives it about one block per multiprocessor
// (the stages take most of the shared memory), so at 4k positions a
// block's whole chunk is requested at once.
//
// Each warp keeps its own softmax state: it scores its ST / SW keys of a
// tile for the GROUP heads (attention_decode_fused's 9-shuffle sums, after
// which lane l holds head (l / 4) % 8's score), updates that head's running
// maximum and sum in the lane itself, and passes the probabilities to its
// other lanes through its own slice of shared memory for p·V. The warps
// meet only to refill a stage and, once, to merge their states at the
// end; the last blocks of a (h, i) to finish merge the chunks' states (one
// pass, with a running maximum) into out, each a share of the heads.
//
// A graph may capture the kernel with programmatic dependent launch: its
// blocks then start while the launch ahead of it drains, and wait for it
// (griddepcontrol.wait) before they read what it writes. In a decode step
// that launch writes q and appends the step's new keys and values, the
// last `fresh` positions of the cache (Decode passes L, the query rows);
// every older row was written by an earlier step. So the copies of the
// first SST tiles' older rows are issued before the wait, and only q, the
// mask, the fresh rows and the partial results (which the launch ahead,
// when it is this kernel too, may still be merging from) come after it.
// At 4k positions a block's whole chunk is then on its way while the
// launch ahead finishes.
#if HEAD_DIM % 32 == 0 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#ifndef SW
#define SW 8    // warps a block
#endif
#ifndef SST
#define SST 2   // tiles in flight
#endif
#ifndef ST
#define ST 64   // keys a tile
#endif
#ifndef KL
#define KL 16   // lanes that score one key: 16 (two keys a pass), or 32
#endif
#define QF (DV * 32 / KL)             // q features a lane holds for the scores
#if KL == 16 && KPW % 2 != 0
#error "KL 16 scores two keys a pass: ST / SW must be even"
#endif
#define KPW (ST / SW)                 // keys a warp takes in a tile
#define TILE (ST * HEAD_DIM)          // floats of a K (or V) tile
#define C4 (GROUP * HEAD_DIM / 4)     // float4 columns of a state's outputs
#define PARTS (SW * 32 / C4)          // threads that share a column in the final merge
#define BATCH 16                      // states a thread loads before it uses them
// Two blocks a multiprocessor where their stages fit in its shared memory
// (228 KB): a launch's blocks can then start beside the launch ahead's.
// (The benchmark's builds of smaller blocks may set it higher.)
#ifndef SMINB
#define SMINB (SW == 8 && SST * 2 * TILE * 4 <= 110 * 1024 ? 2 : 1)
#endif
#ifndef SPREAD
#define SPREAD 1  // 0: the last block alone merges, whatever mergers says
#endif
// ANAT leaves parts of the kernel out, for the benchmark that measures
// what each part costs (the output is then wrong): the merge, the
// arithmetic on the tiles, the copies (the arithmetic then reads whatever
// the stages hold), or everything after the wait. Without the arithmetic
// the compiler drops q's loads too, unless ANAT_KEEP_Q folds q into the
// outputs: the row then tells q's trip from L2 from the arithmetic.
// ANAT_MMA_TWICE (tensor-core builds) issues each tensor-core product
// twice on the same fragments: the products' time then tells whether the
// tensor cores bound them or the loads and splits that feed them.
#ifndef ANAT
#define ANAT 0
#endif
#define ANAT_NO_MERGE 1
#define ANAT_NO_MATH 2
#define ANAT_NO_COPY 4
#define ANAT_EMPTY 8
#define ANAT_KEEP_Q 16
#define ANAT_MMA_TWICE 32
#define MMA_REPEAT (ANAT & ANAT_MMA_TWICE ? 2 : 1)
#ifndef EARLY
#define EARLY 1  // 0: wait for the launch ahead before any copy (the benchmark's comparison)
#endif

__device__ __forceinline__ unsigned smem_u32(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void lds8(float* d, const float* p) {
    const float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
    d[0] = a.x; d[1] = a.y; d[2] = a.z; d[3] = a.w; d[4] = b.x; d[5] = b.y; d[6] = b.z; d[7] = b.w;
}

__device__ __forceinline__ void lds_dv(float* d, const float* p) {
    if constexpr (DV == 4) {
        float4 t = *(const float4*)p;
        d[0] = t.x; d[1] = t.y; d[2] = t.z; d[3] = t.w;
    } else if constexpr (DV == 2) {
        float2 t = *(const float2*)p;
        d[0] = t.x; d[1] = t.y;
    } else {
#pragma unroll
        for (int e = 0; e < DV; e++) d[e] = p[e];
    }
}

// Tile t of the chunk (rows t·ST …, at most ST, never past the chunk's n
// rows) goes to stage t % SST: K and V, counted on the stage's barrier.
// stream_expect announces the tile's bytes (and is the barrier's one
// arrival); stream_copy then copies rows r0 … r1 - 1 of it, K and V, one
// bulk copy each. The stage completes once every announced byte has
// landed, however many copies brought them.
__device__ __forceinline__ int stream_rows(int t, int n) { return min(ST, n - t * ST); }

__device__ __forceinline__ void stream_expect(unsigned long long* bars, int t, int n) {
    const unsigned bytes = (unsigned)stream_rows(t, n) * HEAD_DIM * 4;
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(&bars[t % SST])), "r"(2 * bytes) : "memory");
}

__device__ __forceinline__ void stream_copy(float* stage, unsigned long long* bars, const float* kh,
                                            const float* vh, int t, int r0, int r1) {
    if (r1 <= r0) return;
    const unsigned bytes = (unsigned)(r1 - r0) * HEAD_DIM * 4, bar = smem_u32(&bars[t % SST]);
    float* dst = stage + (size_t)(t % SST) * 2 * TILE + r0 * HEAD_DIM;
    const size_t src = (size_t)t * TILE + (size_t)r0 * HEAD_DIM;
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem_u32(dst)), "l"(kh + src), "r"(bytes), "r"(bar) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem_u32(dst + TILE)), "l"(vh + src), "r"(bytes), "r"(bar) : "memory");
}

__device__ __forceinline__ void stream_issue(float* stage, unsigned long long* bars, const float* kh,
                                             const float* vh, int t, int n) {
    stream_expect(bars, t, n);
    stream_copy(stage, bars, kh, vh, t, 0, stream_rows(t, n));
}

__device__ __forceinline__ void stream_wait(unsigned long long* bar, unsigned parity) {
    const unsigned a = smem_u32(bar);
    unsigned done = 0;
    while (!done) {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done) : "r"(a), "r"(parity) : "memory");
    }
}

// Block (split, h, i)'s chunk: keys j0 … j1 - 1 (fewer under causal), n of
// them in nt tiles, the first `first` of them requested at the start; kh
// and vh point at its first key and value. Rows of the chunk before old
// were in the cache before the launch ahead of this one began; the fresh
// rows after them (the newest positions, S - fresh on) that launch may
// still be writing.
struct StreamChunk {
    int j0, j1, n, nt, first, old;
    const float *kh, *vh;
};

__device__ __forceinline__ StreamChunk stream_chunk(const float* k, const float* v, int L, int S, int cap, int chunk,
                                                    int causal, int fresh) {
    StreamChunk c;
    const int split = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    c.j0 = split * chunk;
    c.j1 = min(c.j0 + chunk, S);
    if (causal) c.j1 = min(c.j1, i + S - L + 1);
    c.n = max(c.j1 - c.j0, 0);
    c.nt = (c.n + ST - 1) / ST;
    c.first = min(c.nt, SST);
    c.kh = k + ((size_t)h * cap + c.j0) * HEAD_DIM;
    c.vh = v + ((size_t)h * cap + c.j0) * HEAD_DIM;
    c.old = min(max(S - fresh - c.j0, 0), c.n);
    return c;
}

// The final merge: out = Σ_s o_s·2^(m_s - M) / Σ_s l_s·2^(m_s - M) over
// the chunks' states, M the largest m_s, one column of 4 outputs a thread,
// in one pass with a running maximum. Several threads (parts) may share a
// column, each taking chunks part, part + parts, …, BATCH at a time in
// flight, and merge_parts then merges their states.
struct MergeState {
    float M, ls;
    float4 a;
};

__device__ __forceinline__ MergeState merge_init() { return {-INFINITY, 0.f, make_float4(0.f, 0.f, 0.f, 0.f)}; }

// po: the column's o of chunk 0 (chunk s at po + s·HEAD_DIM); pm: its (m, l) pairs.
__device__ __forceinline__ void merge_chunks(MergeState& st, const float* po, const float* pm, int splits, int part,
                                             int parts) {
    for (int s0 = part; s0 < splits; s0 += parts * BATCH) {
        float2 ml[BATCH];
        float4 o[BATCH];
#pragma unroll
        for (int b = 0; b < BATCH; b++) {
            const int s = s0 + b * parts;
            ml[b] = s < splits ? __ldcg((const float2*)(pm + 2 * s)) : make_float2(-INFINITY, 0.f);
            o[b] = s < splits ? __ldcg((const float4*)(po + (size_t)s * HEAD_DIM)) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        float mb = st.M;
#pragma unroll
        for (int b = 0; b < BATCH; b++) mb = fmaxf(mb, ml[b].x);
        if (mb == -INFINITY) continue;
        const float c = exp2f(st.M - mb);  // 0 while nothing was seen
        st.a.x *= c; st.a.y *= c; st.a.z *= c; st.a.w *= c;
        st.ls *= c;
#pragma unroll
        for (int b = 0; b < BATCH; b++) {
            const float w = exp2f(ml[b].x - mb);
            st.a.x = fmaf(w, o[b].x, st.a.x); st.a.y = fmaf(w, o[b].y, st.a.y);
            st.a.z = fmaf(w, o[b].z, st.a.z); st.a.w = fmaf(w, o[b].w, st.a.w);
            st.ls = fmaf(w, ml[b].y, st.ls);
        }
        st.M = mb;
    }
}

// Merges the parts' states of each column into part 0's, through pa
// (parts·cols float4, then as many float2). Called by the whole block.
__device__ __forceinline__ void merge_parts(MergeState& st, float4* pa, int parts, int cols, int part, int col) {
    if (parts <= 1) return;
    float2* pml = (float2*)(pa + parts * cols);
    if (part < parts) {
        pa[part * cols + col] = st.a;
        pml[part * cols + col] = make_float2(st.M, st.ls);
    }
    __syncthreads();
    if (part != 0) return;
    for (int p = 1; p < parts; p++) {
        const float2 x = pml[p * cols + col];
        const float mn = fmaxf(st.M, x.x);
        if (mn == -INFINITY) continue;
        const float c0 = exp2f(st.M - mn), c1 = exp2f(x.x - mn);
        const float4 y = pa[p * cols + col];
        st.a.x = st.a.x * c0 + y.x * c1; st.a.y = st.a.y * c0 + y.y * c1;
        st.a.z = st.a.z * c0 + y.z * c1; st.a.w = st.a.w * c0 + y.w * c1;
        st.ls = st.ls * c0 + x.y * c1;
        st.M = mn;
    }
}

__device__ __forceinline__ void merge_write(float* o, const MergeState& st) {
    const float inv = 1.f / st.ls;
    *(float4*)o = make_float4(st.a.x * inv, st.a.y * inv, st.a.z * inv, st.a.w * inv);
}

#ifndef TCM
#define TCM 0  // 1: attention_decode_stream's arithmetic on the tensor cores (below)
#endif
// TRACE 1 (BenchmarkW2D6DecodeTimeline's build): the kernel takes two
// more arguments, a buffer and the step the launch is, and its block's
// first thread stamps its life into trace[(step·blocks + block)·TRN + e]:
// the global timer (ns) at its start, when the wait for the launch ahead
// returns, when q is in its registers, when its first tile has landed,
// when its products are done and at its end (e = 0 … 5), the
// multiprocessor it ran on (6), and the landing of the second group's
// first tile, stamped by that group's first thread (7); then the same
// points by the multiprocessor's cycle counter (8 … 13, 15 for 7; 14 when
// warp 0 has issued the copies ahead of the wait), which times a block's
// own phases where the global timer is coarse; and, by the cycle counter
// alone, the steps of the first thread's first tile: its scores done
// (16), its group's barrier passed (17), its softmax done (18) and its
// p·V done (19). The merge launch stamps 0, 1 and 5 into a buffer of its
// own.
#ifndef TRACE
#define TRACE 0
#endif
#define TRN 24
#if TRACE && !TCM
#error "the timeline's stamps (TRACE) are in the tensor-core build (TCM) only"
#endif
#if TRACE
// The timer reads are predicated on a test of dep (that it is not the
// largest float, which no stamped value is), so they cannot be issued
// before dep's value (a load's, say) has arrived.
__device__ __forceinline__ void trace_stamp(unsigned long long* at, int e, float dep) {
    unsigned long long t, c;
    asm volatile("{\n .reg .pred p;\n setp.eq.f32 p, %2, 0f7F7FFFFF;\n mov.u64 %0, 0;\n mov.u64 %1, 0;\n"
                 " @!p mov.u64 %0, %%globaltimer;\n @!p mov.u64 %1, %%clock64;\n}"
                 : "=l"(t), "=l"(c) : "f"(dep) : "memory");
    at[e] = t;
    at[e + 8] = c;
}

// The cycle counter alone, into *at, once dep has arrived.
__device__ __forceinline__ void trace_cycles(unsigned long long* at, float dep) {
    unsigned long long c;
    asm volatile("{\n .reg .pred p;\n setp.eq.f32 p, %1, 0f7F7FFFFF;\n mov.u64 %0, 0;\n @!p mov.u64 %0, %%clock64;\n}"
                 : "=l"(c) : "f"(dep) : "memory");
    *at = c;
}
#define TRACE_PARAMS , unsigned long long* __restrict__ trace, int tstep
#else
#define TRACE_PARAMS
#endif

#if TCM
// attention_decode_stream with its arithmetic on the tensor cores
// (tcStream, Decode's build from tcFrom to tcTo positions). The CUDA-core
// build spends most of its time at 4k positions in the warps' arithmetic,
// not in the copies: with the arithmetic left out it streams the cache at
// about 73% of the copy bandwidth. Here the two products of a tile are
// mma.sync.m16n8k8 on float32 split in two TF32 parts (a = hi + lo,
// hi·hi + hi·lo + lo·hi; lo·lo and the rounding of lo lose about 2^-21 of
// a product), so the sums keep close to float32 accuracy on a float32
// cache:
//
//   scores   S[key][head] = Σ_d K[key][d]·q[head][d]: M = 16 keys of the
//            tile, N = 8 heads (GROUP of them real), K = 8 features a step;
//   outputs  O[d][head] += Σ_key V[key][d]·P[key][head]: M = 16 features,
//            N = 8 heads, K = 8 keys a step.
//
// The warps share the head dimension, not the keys: for the scores, warp w
// takes the tile's keys 16·(w % MT) … (MT = ST / 16) over its part w / MT
// of the features, and the parts' partial scores meet in shared memory;
// every warp then reads the tile's whole scores and keeps the same softmax
// state, and multiplies them by its own features of V (16-feature slices
// w, w + SW, …). A warp's outputs are then complete for its features, and
// the block writes its state without merging warps. The merge is
// attention_decode_merge's (mergers must be 0).
//
// The fragments: lane = 4·g + t holds, for A (16 x 8), rows g and g + 8,
// columns t and t + 4; for B (8 x 8), rows t and t + 4 of column g; for C
// (16 x 8), rows g and g + 8, columns 2t and 2t + 1. A step's columns t and
// t + 4 of K are taken as features 2t and 2t + 1, and the rows g and g + 8
// of Vᵀ as features 2g and 2g + 1, so each lane reads pairs of adjacent
// floats (8-byte loads). Without a gap between rows in shared memory the
// rows a load touches would all start on the same bank; each run of TROWS
// rows (1 in Decode's build) is followed by 8 floats, and is one bulk copy,
// issued by the lanes of warp 0. Runs of one row were the fastest at 4k
// positions (7.8 µs on an H200, against 8.1 with runs of 2 rows and 8.3
// with runs of 4, whose fragment rows tc_key and score rows SPROW keep
// conflict-free too); at 32k the 64 copies a tile cost more (59 µs,
// against 38.9 with runs of 4).
#ifndef TROWS
#define TROWS 1  // rows a bulk copy brings: each run of TROWS rows is followed by 8 floats
#endif
// LDSM 1: the scores' K fragments come by ldmatrix, four 8 x 4 blocks of
// floats in one instruction, in the registers' order (the 8-byte loads
// need 4 moves a step to put rows g and g + 8 side by side); K's rows are
// then padded by 4 floats, which puts the 8 rows of a block on all 32
// banks, and V's by 8 as before. 50 fewer instructions a tile, and on an
// H200 the same time at 4k positions (7.54 against 7.57 µs for tcStream,
// 7.42 against 7.34 for tcGroups), so the builds Decode takes keep the
// 8-byte loads.
#ifndef LDSM
#define LDSM 0
#endif
#if LDSM && TROWS != 1
#error "ldmatrix (LDSM) takes runs of one row (TROWS 1)"
#endif
#define KPAD (LDSM ? 4 : 8)
#define ROWK(r) ((r) * HEAD_DIM + (r) / TROWS * KPAD)  // where row r of a K tile starts
#define ROW(r) ((r) * HEAD_DIM + (r) / TROWS * 8)      // where row r of a V tile starts
#define TILEK ROWK(ST)                                 // floats of a K tile
#define TILEF ROW(ST)                                  // floats of a V tile
#define STAGEF (TILEK + TILEF)                         // floats of a stage
#if TROWS & (TROWS - 1)
#error "TROWS must be a power of two"
#endif
// Where key r's scores sit in sp (a row of 8 heads a key). The softmax's
// lanes t = 0 … 3 read 4 keys of 4 different runs (tc_key), which would
// fall on the same banks when a run holds 2 or 4 keys; SPROW puts the keys
// of a run ST / SR rows apart, so those 4 keys land on 4 different groups
// of 8 banks (with runs of one row, SPROW(r) = r).
#define SR (TROWS < 4 ? TROWS : 4)
#define SPROW(r) ((r) % SR * (ST / SR) + (r) / SR)

// Which of 16 keys a fragment row takes. The 4 rows one 8-byte load of a
// half-warp reads (gl = 0 … 3, the same hh and hi) must lie in runs of
// TROWS rows whose 8-float gaps put them on different banks (run j starts
// 8·j banks on): run gl, so the run's rows differ by hh and hi.
__device__ __forceinline__ int tc_key(int gl, int hh, int hi) {
    if (TROWS >= 4) return 4 * gl + 2 * hh + hi;
    if (TROWS == 2) return 2 * gl + 8 * hh + hi;
    return gl + 4 * hh + 8 * hi;
}
// TG groups of a block's warps take its tiles in turn (group γ tiles γ,
// γ + TG, …), each with a softmax state of its own, merged at the end in
// shared memory: with TG 2 and a chunk of two tiles, a block's two tiles
// are multiplied at once instead of one after the other.
#ifndef TG
#define TG 1
#endif
#define WG (SW / TG)            // warps a group
#define MT (ST / 16)            // 16-key slices of a tile
#define NP (WG / MT)            // parts of the features in the scores
#define DP (HEAD_DIM / NP)      // features a part
#define KS (DP / 8)             // mma steps a part
#define VT (HEAD_DIM / 16)      // 16-feature slices of V
#define VW ((VT + WG - 1) / WG) // slices a warp, at most
#if ST % 16 != 0 || SW % TG != 0 || WG % MT != 0 || DP % 8 != 0 || GROUP > 8 || SST % TG != 0
#error "the tensor-core decode needs ST a multiple of 16, SW / TG a multiple of ST / 16, HEAD_DIM / (SW·16 / (TG·ST)) a multiple of 8, GROUP <= 8 and SST a multiple of TG"
#endif

// hi = x with its low 13 mantissa bits cleared (a TF32 value); lo = x - hi,
// exact in float32, of which the tensor core takes the top 11 bits.
__device__ __forceinline__ void tf32_split(float x, unsigned& hi, unsigned& lo) {
    const unsigned h = __float_as_uint(x) & 0xffffe000u;
    hi = h;
    lo = __float_as_uint(x - __uint_as_float(h));
}

__device__ __forceinline__ void mma_tf32(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c[0] += hi·hi, c[1] += hi·lo + lo·hi: A from two pairs (a0, a2) and
// (a1, a3) of floats, B already split. (lo·hi in a third accumulator, for
// shorter chains of dependent products, measured level: 7.58 against 7.59
// µs at 4k.)
// The three products of split fragments: c[0] += hi·hi, c[1] += hi·lo +
// lo·hi (each MMA_REPEAT times; once outside the anatomy).
__device__ __forceinline__ void mma3_split(float (*c)[4], const unsigned* ah, const unsigned* al, const unsigned* bh,
                                           const unsigned* bl) {
#pragma unroll
    for (int r = 0; r < MMA_REPEAT; r++) {
        mma_tf32(c[0], ah, bh[0], bh[1]);
        mma_tf32(c[1], ah, bl[0], bl[1]);
        mma_tf32(c[1], al, bh[0], bh[1]);
    }
}

__device__ __forceinline__ void mma3(float (*c)[4], float2 x0, float2 x1, const unsigned* bh, const unsigned* bl) {
    unsigned ah[4], al[4];
    tf32_split(x0.x, ah[0], al[0]);
    tf32_split(x1.x, ah[1], al[1]);
    tf32_split(x0.y, ah[2], al[2]);
    tf32_split(x1.y, ah[3], al[3]);
    mma3_split(c, ah, al, bh, bl);
}

// mma3 on an A fragment already in the registers' order (ldmatrix's).
__device__ __forceinline__ void mma3r(float (*c)[4], const unsigned* a, const unsigned* bh, const unsigned* bl) {
    unsigned ah[4], al[4];
#pragma unroll
    for (int e = 0; e < 4; e++) tf32_split(__uint_as_float(a[e]), ah[e], al[e]);
    mma3_split(c, ah, al, bh, bl);
}

// HALF 1: the products on m16n8k16 in float16 instead of m16n8k8 in TF32.
// A float16 holds as many bits of a value as a TF32 (11), so each value
// is split the same way, hi = x rounded to float16 and lo = x - hi, and
// the same three products keep the sums close to float32 accuracy; but
// one such product takes 16 features (or keys) where a TF32 one takes 8,
// so a tile needs half as many, and the split fragments half the
// registers. lo is kept scaled by 2^11 (LOS), so that it stays a normal
// float16 wherever hi is, and the cross terms' sums are scaled back once.
// The split needs |x| < 65,504, the largest float16: a key's or value's
// features and q·scale·log2(e) (a model's are far smaller); a larger one
// becomes infinite and the output NaN.
#ifndef HALF
#define HALF 0
#endif
#define LOS 2048.f
#if HALF && (LDSM || DP % 16 != 0)
#error "the float16 products (HALF) take the 8-byte loads (LDSM 0) and parts of 16 features"
#endif
#define QS (HALF ? KS / 2 : KS)  // score steps a part: 16 features each with HALF, else 8
#define LOW (HALF ? 1.f / LOS : 1.f)  // what the cross terms' accumulators are scaled by

// hi and lo of x0 and x1 as two float16 pairs (x0 in the low half, the
// first element of a fragment's pair); lo is scaled by LOS.
__device__ __forceinline__ void f16_split(float x0, float x1, unsigned& hi, unsigned& lo) {
    float h0, h1;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(hi) : "f"(x1), "f"(x0));
    asm("{\n .reg .b16 a, b;\n mov.b32 {a, b}, %2;\n cvt.f32.f16 %0, a;\n cvt.f32.f16 %1, b;\n}"
        : "=f"(h0), "=f"(h1) : "r"(hi));
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(lo) : "f"((x1 - h1) * LOS), "f"((x0 - h0) * LOS));
}

__device__ __forceinline__ void mma_f16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The float16 products of an A fragment given as four pairs of floats,
// in the fragment's order (rows g and g + 8, then the same rows 8 further
// on in K), with B already split: c[0] += hi·hi, c[1] += (hi·lo + lo·hi)·LOS.
__device__ __forceinline__ void mma3h(float (*c)[4], float2 x0, float2 x1, float2 x2, float2 x3, const unsigned* bh,
                                      const unsigned* bl) {
    unsigned ah[4], al[4];
    f16_split(x0.x, x0.y, ah[0], al[0]);
    f16_split(x1.x, x1.y, ah[1], al[1]);
    f16_split(x2.x, x2.y, ah[2], al[2]);
    f16_split(x3.x, x3.y, ah[3], al[3]);
#pragma unroll
    for (int r = 0; r < MMA_REPEAT; r++) {
        mma_f16(c[0], ah, bh[0], bh[1]);
        mma_f16(c[1], ah, bl[0], bl[1]);
        mma_f16(c[1], al, bh[0], bh[1]);
    }
}

// Rows r, r + 8 and features f … f + 7 of a K tile as an A fragment: lane
// l gives the row of block l / 8 (rows 0-7 then 8-15, features f then
// f + 4), and receives a0 … a3 in order.
__device__ __forceinline__ void tc_ldsm(unsigned* a, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]) : "r"(addr));
}

// The softmax of a tile for head g at the keys of its p·V B fragments
// (columns t and t + 4 of each step): the scores from spb (the parts'
// partial sums; the mask, if any, at mrow), their maximum and sum folded
// into m_run and l_run, corr the factor that rescales what came before,
// and the probabilities split for the tensor cores. FULL: every key of
// the tile is in the chunk and there is no mask, so no key is tested.
template <bool FULL>
__device__ __forceinline__ float tc_softmax(const float (*spb)[ST][8], const float* mrow, int has_mask, int nv, int g,
                                            int t, float& m_run, float& l_run, unsigned (*ph)[2], unsigned (*pl)[2]) {
    float sc[ST / 8][2];
    float mx = m_run;
#pragma unroll
    for (int ks = 0; ks < ST / 8; ks++)
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int r = 16 * (ks / 2) + tc_key(t, ks % 2, u);
            float x = 0.f;
#pragma unroll
            for (int p = 0; p < NP; p++) x += spb[p][SPROW(r)][g];
            if (!FULL) {
                if (has_mask && r < nv) x += mrow[r] * LOG2E;
                x = r < nv ? x : -INFINITY;
            }
            sc[ks][u] = x;
            mx = fmaxf(mx, x);
        }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // With every key in the chunk and no mask, mx is a finite score.
    const bool none = !FULL && mx == -INFINITY;
    const float corr = none ? 1.f : exp2f(m_run - mx);  // 0 when m_run was -inf
    float sum = 0.f;
#pragma unroll
    for (int ks = 0; ks < ST / 8; ks++)
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const float p = none ? 0.f : exp2f(sc[ks][u] - mx);
            sum += p;
            sc[ks][u] = p;
        }
#if HALF
    // Step s of 16 keys pairs keys t and t + 4 (steps 2s and 2s + 1 above,
    // u = 0), then t + 8 and t + 12 (u = 1): tc_pv's order.
#pragma unroll
    for (int s = 0; s < ST / 16; s++)
#pragma unroll
        for (int u = 0; u < 2; u++) f16_split(sc[2 * s][u], sc[2 * s + 1][u], ph[s][u], pl[s][u]);
#else
#pragma unroll
    for (int ks = 0; ks < ST / 8; ks++)
#pragma unroll
        for (int u = 0; u < 2; u++) tf32_split(sc[ks][u], ph[ks][u], pl[ks][u]);
#endif
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    l_run = l_run * corr + sum;
    m_run = mx;
    return corr;
}

// Rows r0 … r1 - 1 of tile t (K and V), one bulk copy a row, by the 32
// lanes of a warp, into stage t % SST's padded rows.
__device__ __forceinline__ void tc_copy(float* stage, unsigned long long* bars, const float* kh, const float* vh,
                                        int t, int r0, int r1, int lane) {
    const unsigned bar = smem_u32(&bars[t % SST]);
    float* dst = stage + (size_t)(t % SST) * STAGEF;
    for (int q = lane; q < ST / TROWS; q += 32) {
        const int a = max(r0, q * TROWS), b = min(r1, q * TROWS + TROWS);
        if (a >= b) continue;
        const size_t src = ((size_t)t * ST + a) * HEAD_DIM;
        const unsigned bytes = (unsigned)(b - a) * HEAD_DIM * 4;
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                     ::"r"(smem_u32(dst + ROWK(a))), "l"(kh + src), "r"(bytes), "r"(bar) : "memory");
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                     ::"r"(smem_u32(dst + TILEK + ROW(a))), "l"(vh + src), "r"(bytes), "r"(bar) : "memory");
    }
}

#ifndef TCOPY
#define TCOPY 0  // 1: every thread copies 16-byte pieces (cp.async) instead of warp 0's bulk copies
#endif
#if TG > 1 && TCOPY
#error "tile groups (TG) take the bulk copies (TCOPY 0)"
#endif
#if TG > 4
#error "at most 4 tile groups (TG)"
#endif

// Waits for the warps of tile group grp (all the block's with one group).
// The barriers' numbers are immediates: with a register the compiler
// reserves all 16 of a block's, and the multiprocessor then holds only two
// blocks.
__device__ __forceinline__ void tc_group_sync(int grp) {
    if (TG == 1) __syncthreads();
    else if (grp == 0) asm volatile("bar.sync 1, %0;" ::"n"(WG * 32) : "memory");
    else if (grp == 1) asm volatile("bar.sync 2, %0;" ::"n"(WG * 32) : "memory");
    else if (grp == 2) asm volatile("bar.sync 3, %0;" ::"n"(WG * 32) : "memory");
    else asm volatile("bar.sync 4, %0;" ::"n"(WG * 32) : "memory");
}

// With TCOPY: rows r0 … r1 - 1 of tile t, K and V, in 16-byte pieces
// spread over the block's threads (consecutive threads, consecutive pieces
// of a row). Each piece may land anywhere, so rows apart cost no extra
// copies; tc_arrive then counts the thread on the tile's barrier once all
// its pieces so far have landed (the barrier expects every thread).
__device__ __forceinline__ void tc_pieces(float* stage, const float* kh, const float* vh, int t, int r0, int r1,
                                          int tid) {
    constexpr int PR = HEAD_DIM / 4;  // pieces a row
    float* dst = stage + (size_t)(t % SST) * STAGEF;
    for (int c = tid; c < (r1 - r0) * PR; c += SW * 32) {
        const int r = r0 + c / PR, e = c % PR * 4;
        const size_t src = ((size_t)t * ST + r) * HEAD_DIM + e;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
                     ::"r"(smem_u32(dst + ROWK(r) + e)), "l"(kh + src) : "memory");
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
                     ::"r"(smem_u32(dst + TILEK + ROW(r) + e)), "l"(vh + src) : "memory");
    }
}

__device__ __forceinline__ void tc_arrive(unsigned long long* bars, int t) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(smem_u32(&bars[t % SST])) : "memory");
}

// acc[j] += Σ_key V[key][slice w + j·SW]·P[key][head]: the warp's slices of
// the outputs, K = 8 keys a step (16 with HALF). FULL: every key of the tile is in the
// chunk; else the rows past nv (stale, perhaps not even numbers) are read
// as zeros, since a zero probability times NaN would still be NaN.
// Features 16·vs + 2g and 2g + 1 of row r of a V tile, or zeros where ok
// is false (a row past the chunk).
__device__ __forceinline__ float2 tc_vpair(const float* vt, int r, int vs, int g, bool ok) {
    const float2 x = *(const float2*)(vt + ROW(r) + 16 * vs + 2 * g);
    return ok ? x : make_float2(0.f, 0.f);
}

template <bool FULL>
__device__ __forceinline__ void tc_pv(float (*acc)[2][4], const float* vt, const unsigned (*ph)[2],
                                      const unsigned (*pl)[2], int gw, int g, int t, int nv) {
#if HALF
    // K = 16 keys a step: rows 2t, 2t + 1 of B are keys ra and rb, rows
    // 2t + 8, 2t + 9 keys rc and rd (tc_softmax's pairs).
#pragma unroll
    for (int s = 0; s < ST / 16; s++) {
        const int ra = 16 * s + tc_key(t, 0, 0), rb = 16 * s + tc_key(t, 1, 0);
        const int rc = 16 * s + tc_key(t, 0, 1), rd = 16 * s + tc_key(t, 1, 1);
#pragma unroll
        for (int j = 0; j < VW; j++) {
            const int vs = gw + j * WG;
            if (VT % WG == 0 || vs < VT) {
                const float2 a = tc_vpair(vt, ra, vs, g, FULL || ra < nv), b = tc_vpair(vt, rb, vs, g, FULL || rb < nv);
                const float2 c = tc_vpair(vt, rc, vs, g, FULL || rc < nv), d = tc_vpair(vt, rd, vs, g, FULL || rd < nv);
                // Vᵀ's rows g and g + 8 are features 2g and 2g + 1.
                mma3h(acc[j], make_float2(a.x, b.x), make_float2(a.y, b.y), make_float2(c.x, d.x),
                      make_float2(c.y, d.y), ph[s], pl[s]);
            }
        }
    }
#else
#pragma unroll
    for (int ks = 0; ks < ST / 8; ks++) {
        // Columns t and t + 4 of step ks: keys r0 and r1 (tc_key).
        const int r0 = 16 * (ks / 2) + tc_key(t, ks % 2, 0), r1 = 16 * (ks / 2) + tc_key(t, ks % 2, 1);
        const bool ok0 = FULL || r0 < nv, ok1 = FULL || r1 < nv;
#pragma unroll
        for (int j = 0; j < VW; j++) {
            const int vs = gw + j * WG;
            if (VT % WG == 0 || vs < VT) {
                const float2 x0 = tc_vpair(vt, r0, vs, g, ok0), x1 = tc_vpair(vt, r1, vs, g, ok1);
                // Vᵀ: (a0, a1) = features 2g, 2g + 1 of key r0; (a2, a3) of key r1.
                mma3(acc[j], make_float2(x0.x, x1.x), make_float2(x0.y, x1.y), ph[ks], pl[ks]);
            }
        }
    }
#endif
}

extern "C" __global__ void __launch_bounds__(SW * 32, SMINB) attention_decode_stream(
        float* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml,
        unsigned int* __restrict__ count, const float* __restrict__ q, const float* __restrict__ k,
        const float* __restrict__ v, const float* __restrict__ mask, int L, int S, int cap, int chunk,
        float scale, int causal, int has_mask, int fresh, int mergers TRACE_PARAMS) {
    extern __shared__ __align__(128) float stage[];  // SST stages of (K tile, V tile), padded rows
    __shared__ __align__(8) unsigned long long bars[SST];
    __shared__ __align__(16) float sp[TG][2][NP][ST][8];  // a group's parts' partial scores, two tiles in turn
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#if ANAT & ANAT_EMPTY
    asm volatile("griddepcontrol.wait;" ::: "memory");
    return;
#endif

    const int split = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    const int splits = gridDim.x, Hq = gridDim.y * GROUP;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
    const int grp = warp / WG, gw = warp % WG;  // the warp's tile group, and its place in it
#if TRACE
    unsigned long long* tr = trace + ((size_t)tstep * gridDim.x * gridDim.y * gridDim.z +
                                      ((size_t)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * TRN;
    if (tid == 0) {
        trace_stamp(tr, 0, 0.f);
        unsigned sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        tr[6] = sm;
    }
#endif
    const StreamChunk ch = stream_chunk(k, v, L, S, cap, chunk, causal, fresh);
    const int j0 = ch.j0, j1 = ch.j1, n = ch.n, nt = ch.nt, first = ch.first, old = ch.old;
    const float *kh = ch.kh, *vh = ch.vh;
#if TCOPY && ANAT
#error "the anatomy (ANAT) takes the bulk copies (TCOPY 0)"
#endif
#if TCOPY
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < SST; s++)
            asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(&bars[s])), "r"(SW * 32) : "memory");
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();  // the barriers are initialised before any thread arrives
    // The first tiles' old rows stream in while the launch ahead drains; a
    // tile with no fresh row is counted at once, the others after the wait.
    for (int tt = 0; tt < first; tt++) {
        tc_pieces(stage, kh, vh, tt, 0, min(stream_rows(tt, n), old - tt * ST), tid);
        if (tt * ST + stream_rows(tt, n) <= old) tc_arrive(bars, tt);
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
    for (int tt = 0; tt < first; tt++) {
        if (tt * ST + stream_rows(tt, n) <= old) continue;
        tc_pieces(stage, kh, vh, tt, max(old - tt * ST, 0), stream_rows(tt, n), tid);
        tc_arrive(bars, tt);
    }
#else
    // tiles requested at the start (none in the anatomy's builds without copies)
    const int start = ANAT & ANAT_NO_COPY ? 0 : first;
    if (warp == 0) {
        if (lane == 0) {
#pragma unroll
            for (int s = 0; s < SST; s++)
                asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(&bars[s])) : "memory");
            asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            for (int tt = 0; tt < start; tt++) stream_expect(bars, tt, n);
        }
        __syncwarp();
        // The first tiles' old rows stream in while the launch ahead drains.
        for (int tt = 0; tt < start; tt++) tc_copy(stage, bars, kh, vh, tt, 0, min(stream_rows(tt, n), old - tt * ST), lane);
#if TRACE
        if (lane == 0) tr[14] = clock64();  // the copies ahead of the wait are issued
#endif
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
#if TRACE
    if (tid == 0) trace_stamp(tr, 1, 0.f);
#endif
    if (warp == 0)
        for (int tt = 0; tt < start; tt++) tc_copy(stage, bars, kh, vh, tt, max(old - tt * ST, 0), stream_rows(tt, n), lane);
#endif

    // q for the scores as B fragments, split: this lane's features
    // dp·DP + 8·s + 2t, + 1 of head g (with LDSM, + t and + t + 4: K's
    // columns in their own order), zeros past the group.
    const int mt = gw % MT, dp = gw / MT;
    unsigned qh[QS][2], ql[QS][2];
    const float* qrow = q + ((size_t)i * Hq + h * GROUP + min(g, GROUP - 1)) * HEAD_DIM + dp * DP;  // head g's part
#if HALF
    {
        // With HALF, step s's pairs: features dp·DP + 16·s + 2t, + 1 and
        // 8 further on (B's rows 2t, 2t + 1 and 2t + 8, 2t + 9).
        const float* qg = qrow + 2 * t;
        const float f = g < GROUP ? scale * LOG2E : 0.f;  // zeros past the group
#pragma unroll
        for (int s = 0; s < QS; s++)
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const float2 x = *(const float2*)(qg + 16 * s + 8 * u);  // the read-only path, as below
                f16_split(x.x * f, x.y * f, qh[s][u], ql[s][u]);
            }
    }
#else
    {
        const float* qg = qrow + (LDSM ? t : 2 * t);
#pragma unroll
        for (int s = 0; s < KS; s++) {
#if LDSM
            float2 x = make_float2(qg[8 * s], qg[8 * s + 4]);  // features t and t + 4 of the step
#else
            float2 x = *(const float2*)(qg + 8 * s);
#endif
            // q comes by the read-only path (q is const __restrict__: the
            // compiler emits LDG.CONSTANT), after griddepcontrol.wait,
            // which makes the launch ahead's writes visible to this grid;
            // nothing reads q before it. Through L2 only (__ldcg) the
            // overlap checks passed too, but tcGroups took 9.55 µs at 4k
            // against 7.35, smallStream 8.55 against 8.39 (H200), most
            // likely because each block then waits for q in L2 behind the
            // cache's bulk copies, where by the read-only path it finds q
            // in L1, brought there by another block on its multiprocessor.
            if (g >= GROUP) x = make_float2(0.f, 0.f);
            tf32_split(x.x * scale * LOG2E, qh[s][0], ql[s][0]);
            tf32_split(x.y * scale * LOG2E, qh[s][1], ql[s][1]);
        }
    }
#endif
    // The warp's outputs, features of slices gw + j·WG for heads 2t and
    // 2t + 1 (C fragments; [1] holds the cross terms), and head g's
    // running maximum and sum, the same in every warp of the group.
    float acc[VW][2][4] = {};
    float m_run = -INFINITY, l_run = 0.f;
#if TRACE
    if (tid == 0) trace_stamp(tr, 2, __uint_as_float(qh[0][0]) + __uint_as_float(ql[QS - 1][1]));
#endif
    __syncthreads();  // the barriers are initialised

    for (int tt = grp; tt < nt; tt += TG) {
        const int s = tt % SST, b = (tt / TG) & 1;
        if (!(ANAT & ANAT_NO_COPY)) stream_wait(&bars[s], (tt / SST) & 1);
        const float* kt = stage + (size_t)s * STAGEF;
#if TRACE
        if (tt == grp && lane == 0 && gw == 0 && grp < 2) {
            // Group 1's landing goes to 7 (and 15): slot 3 of tr + 4.
            trace_stamp(grp == 0 ? tr : tr + 4, 3, kt[0]);
        }
#endif
        const float* vt = kt + TILEK;
        const int base = j0 + tt * ST, nv = min(ST, j1 - base);
#if !(ANAT & ANAT_NO_MATH)
        // 1. Partial scores of the M-tile's keys k0 (rows g) and k1 (rows
        // g + 8) over part dp's features.
        {
            float c[2][2][4] = {};  // [step parity][hi·hi, cross terms]
#if LDSM
            const int k0 = 16 * mt + g, k1 = k0 + 8;
            const unsigned la = smem_u32(kt + ROWK(16 * mt + lane % 16) + dp * DP + 4 * (lane / 16));
#pragma unroll
            for (int st = 0; st < KS; st++) {
                unsigned x[4];
                tc_ldsm(x, la + 32 * st);
                mma3r(c[st & 1], x, qh[st], ql[st]);
            }
#else
            const int k0 = 16 * mt + tc_key(g % 4, g / 4, 0), k1 = 16 * mt + tc_key(g % 4, g / 4, 1);
            const float* kr0 = kt + ROWK(k0) + dp * DP + 2 * t;
            const float* kr1 = kt + ROWK(k1) + dp * DP + 2 * t;
#pragma unroll
            for (int st = 0; st < QS; st++) {
#if HALF
                // A's pairs: features 16·st + 2t, + 1 of keys k0 and k1, then 8 further on.
                const float2 x0 = *(const float2*)(kr0 + 16 * st), x1 = *(const float2*)(kr1 + 16 * st);
                const float2 x2 = *(const float2*)(kr0 + 16 * st + 8), x3 = *(const float2*)(kr1 + 16 * st + 8);
                mma3h(c[st & 1], x0, x1, x2, x3, qh[st], ql[st]);
#else
                const float2 x0 = *(const float2*)(kr0 + 8 * st), x1 = *(const float2*)(kr1 + 8 * st);
                mma3(c[st & 1], x0, x1, qh[st], ql[st]);
#endif
            }
#endif
            float x[4];
#pragma unroll
            for (int e = 0; e < 4; e++) x[e] = (c[0][1][e] + c[1][1][e]) * LOW + (c[0][0][e] + c[1][0][e]);
            *(float2*)&sp[grp][b][dp][SPROW(k0)][2 * t] = make_float2(x[0], x[1]);
            *(float2*)&sp[grp][b][dp][SPROW(k1)][2 * t] = make_float2(x[2], x[3]);
#if TRACE
            if (tt == 0 && tid == 0) trace_cycles(tr + 16, x[0] + x[3]);
#endif
        }
        tc_group_sync(grp);  // every part's scores are in sp[grp][b]
#if TRACE
        if (tt == 0 && tid == 0) trace_cycles(tr + 17, 0.f);
#endif
        // 2. Head g's softmax over the tile, at the keys of its p·V B
        // fragments.
        unsigned ph[HALF ? ST / 16 : ST / 8][2], pl[HALF ? ST / 16 : ST / 8][2];
        const float* mrow = has_mask ? mask + (size_t)i * S + base : mask;
        const float corr = nv == ST && !has_mask
                                   ? tc_softmax<true>(sp[grp][b], mrow, has_mask, nv, g, t, m_run, l_run, ph, pl)
                                   : tc_softmax<false>(sp[grp][b], mrow, has_mask, nv, g, t, m_run, l_run, ph, pl);
        // 3. The outputs' heads are 2t and 2t + 1: their rescale factors
        // come from the lanes that hold those heads' states.
#if TRACE
        if (tt == 0 && tid == 0) trace_cycles(tr + 18, corr + __uint_as_float(ph[0][0] | pl[0][1]));
#endif
        const float c0 = __shfl_sync(0xffffffffu, corr, 8 * t), c1 = __shfl_sync(0xffffffffu, corr, 8 * t + 4);
#pragma unroll
        for (int j = 0; j < VW; j++)
#pragma unroll
            for (int x = 0; x < 2; x++) {
                acc[j][x][0] *= c0; acc[j][x][1] *= c1; acc[j][x][2] *= c0; acc[j][x][3] *= c1;
            }
        if (nv == ST) tc_pv<true>(acc, vt, ph, pl, gw, g, t, nv);
        else tc_pv<false>(acc, vt, ph, pl, gw, g, t, nv);
#if TRACE
        if (tt == 0 && tid == 0) trace_cycles(tr + 19, acc[0][0][0] + acc[VW - 1][1][3]);
#endif
#endif
        if (tt + SST < nt && !(ANAT & ANAT_NO_COPY)) {
            tc_group_sync(grp);  // every warp of the group is done with stage s (only this group's tiles use it)
#if TCOPY
            tc_pieces(stage, kh, vh, tt + SST, 0, stream_rows(tt + SST, n), tid);
            tc_arrive(bars, tt + SST);
#else
            if (gw == 0) {
                // Order the group's reads of the stage before the copy engine's writes.
                asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
                if (lane == 0) stream_expect(bars, tt + SST, n);
                __syncwarp();
                tc_copy(stage, bars, kh, vh, tt + SST, 0, stream_rows(tt + SST, n), lane);
            }
#endif
        }
    }

#if TRACE
    if (tid == 0) trace_stamp(tr, 4, acc[0][0][0] + acc[0][1][0]);
#endif
#if (ANAT & ANAT_NO_MATH) && (ANAT & ANAT_KEEP_Q)
    {
        float qs = 0.f;
#pragma unroll
        for (int s = 0; s < QS; s++)
            qs += (__uint_as_float(qh[s][0]) + __uint_as_float(qh[s][1])) + (__uint_as_float(ql[s][0]) + __uint_as_float(ql[s][1]));
        acc[0][0][0] += qs;
    }
#endif
#if TG > 1
    // The groups' states meet in group 0, through the stages (every tile
    // has landed and been read once all warps pass the barrier): each
    // warp of group γ > 0 leaves, lane by lane, its head g's maximum and
    // sum and its outputs, and the warp of group 0 in the same place takes
    // them in.
    {
        constexpr int REC = VW * 4 + 2;  // floats a lane leaves
        float* xo = stage;
        __syncthreads();
        if (grp > 0) {
            float* r = xo + (((size_t)(grp - 1) * WG + gw) * 32 + lane) * REC;
#pragma unroll
            for (int j = 0; j < VW; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) r[4 * j + e] = acc[j][0][e] + acc[j][1][e] * LOW;
            r[VW * 4] = m_run;
            r[VW * 4 + 1] = l_run;
        }
        __syncthreads();
        if (grp > 0) return;
#pragma unroll
        for (int j = 0; j < VW; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[j][0][e] += acc[j][1][e] * LOW;
                acc[j][1][e] = 0.f;
            }
        for (int o = 1; o < TG; o++) {
            const float* r = xo + (((size_t)(o - 1) * WG + gw) * 32 + lane) * REC;
            const float mo = r[VW * 4], lo = r[VW * 4 + 1], mx = fmaxf(m_run, mo);
            const float ca = m_run == -INFINITY ? 0.f : exp2f(m_run - mx), cb = mo == -INFINITY ? 0.f : exp2f(mo - mx);
            l_run = l_run * ca + lo * cb;
            m_run = mx;
            // Heads 2t and 2t + 1 of the outputs: their factors from the
            // lanes that hold those heads' states.
            const float a0 = __shfl_sync(0xffffffffu, ca, 8 * t), a1 = __shfl_sync(0xffffffffu, ca, 8 * t + 4);
            const float b0 = __shfl_sync(0xffffffffu, cb, 8 * t), b1 = __shfl_sync(0xffffffffu, cb, 8 * t + 4);
#pragma unroll
            for (int j = 0; j < VW; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[j][0][e] = acc[j][0][e] * (e % 2 ? a1 : a0) + r[4 * j + e] * (e % 2 ? b1 : b0);
        }
    }
#endif
    // The block's state: each warp its slices' outputs, warp 0 the heads'
    // maxima and sums. Output feature 16·vs + 2g (+ 1) of head 2t (+ 1).
#pragma unroll
    for (int j = 0; j < VW; j++) {
        const int vs = gw + j * WG;
        if (VT % WG != 0 && vs >= VT) continue;
#pragma unroll
        for (int x = 0; x < 2; x++) {
            const int head = 2 * t + x;
            if (head < GROUP) {
                const size_t at = ((size_t)i * Hq + h * GROUP + head) * splits + split;
                __stcg((float2*)(part_o + at * HEAD_DIM + 16 * vs + 2 * g),
                       make_float2(acc[j][1][x] * LOW + acc[j][0][x], acc[j][1][x + 2] * LOW + acc[j][0][x + 2]));
            }
        }
    }
    if (warp == 0 && t == 0 && g < GROUP) {
        const size_t at = ((size_t)i * Hq + h * GROUP + g) * splits + split;
        __stcg((float2*)(part_ml + at * 2), make_float2(m_run, l_run));
    }
#if TRACE
    if (tid == 0) trace_stamp(tr, 5, 0.f);
#endif
}
#else
extern "C" __global__ void __launch_bounds__(SW * 32, SMINB) attention_decode_stream(
        float* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml,
        unsigned int* __restrict__ count, const float* __restrict__ q, const float* __restrict__ k,
        const float* __restrict__ v, const float* __restrict__ mask, int L, int S, int cap, int chunk,
        float scale, int causal, int has_mask, int fresh, int mergers) {
    // SST stages of (K tile, V tile); after the keys, the warps' sums. Decode sizes it.
    extern __shared__ __align__(128) float stage[];
    __shared__ __align__(8) unsigned long long bars[SST];
    // A warp's probabilities, key by key, and its rescale factors last:
    // eight heads a row, so a lane reads a key's in two 16-byte loads.
    __shared__ __align__(16) float wp[SW][KPW + 1][8];
    __shared__ float wm[SW][GROUP], wl[SW][GROUP];
    __shared__ int last;
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#if ANAT & ANAT_EMPTY
    asm volatile("griddepcontrol.wait;" ::: "memory");
    return;
#endif

    const int split = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    const int splits = gridDim.x, Hq = gridDim.y * GROUP;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, e0 = lane * DV;
    const int half = lane / KL, sub = lane % KL;  // the score layout's key of two, and lane in it
    const StreamChunk ch = stream_chunk(k, v, L, S, cap, chunk, causal, fresh);
    const int j0 = ch.j0, j1 = ch.j1, n = ch.n, nt = ch.nt, first = ch.first, old = ch.old;
    const float *kh = ch.kh, *vh = ch.vh;
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < SST; s++)
            asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(&bars[s])) : "memory");
        // The barriers must be initialised before the copy engine signals them.
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#if EARLY
        // The first tiles' old rows stream in while the launch ahead
        // drains: nothing it writes is among them.
        for (int t = 0; t < first && !(ANAT & ANAT_NO_COPY); t++) {
            stream_expect(bars, t, n);
            stream_copy(stage, bars, kh, vh, t, 0, min(stream_rows(t, n), old - t * ST));
        }
#endif
    }
    // Everything else (q, the mask, the fresh rows, and part_o, part_ml and
    // count, which the launch ahead may still be merging from) waits for it.
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (tid == 0) {
        for (int t = 0; t < first && !(ANAT & ANAT_NO_COPY); t++) {
#if EARLY
            stream_copy(stage, bars, kh, vh, t, max(old - t * ST, 0), stream_rows(t, n));
#else
            stream_issue(stage, bars, kh, vh, t, n);
#endif
        }
    }
    // q for the scores, in KL-lane layout (a lane's DV features at sub·DV,
    // and with KL = 16 another DV at sub·DV + 16·DV); acc in the 32-lane
    // layout of p·V (DV features at e0).
    float qr[GROUP][QF], acc[GROUP][DV];
    const float* qi = q + ((size_t)i * Hq + h * GROUP) * HEAD_DIM + sub * DV;
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
        lds_dv(qr[g], qi + g * HEAD_DIM);  // a plain load: the generic pointer reaches global memory
#if KL == 16
        lds_dv(qr[g] + DV, qi + g * HEAD_DIM + 16 * DV);
#endif
#pragma unroll
        for (int e = 0; e < QF; e++) qr[g][e] *= scale * LOG2E;
#pragma unroll
        for (int e = 0; e < DV; e++) acc[g][e] = 0.f;
    }
    // This lane's head after the score sums, and the warp's state for it
    // (the same in the KL == 32 / KL == 16 lanes that share the head).
    const int hg = KL == 32 ? (lane >> 2) & 7 : (lane >> 1) & 7;
    const bool writer = KL == 32 ? (lane & 3) == 0 : (lane & 17) == 0;  // one lane a head
    float m_run = -INFINITY, l_run = 0.f;
    __syncthreads();  // the barriers are initialised

    for (int t = 0; t < nt; t++) {
        const int s = t % SST;
        if (!(ANAT & ANAT_NO_COPY)) stream_wait(&bars[s], (t / SST) & 1);
#if !(ANAT & ANAT_NO_MATH)
        const float* kt = stage + (size_t)s * 2 * TILE;
        const float* vt = kt + TILE;
        const int base = j0 + t * ST, nv = min(ST, j1 - base);
        // 1. Scores of keys warp + SW·u (rows past nv hold stale data and
        // are masked), head hg's in this lane: with KL = 32 key u's; with
        // KL = 16 the half-warp lane / 16 takes keys u = 2·u2 + half, two
        // keys a pass, so that the sums take 8 shuffles a pass instead of 9
        // a key.
        float sc[KPW / (32 / KL)];
#pragma unroll
        for (int u2 = 0; u2 < KPW / (32 / KL); u2++) {
            const int jl = warp + SW * (KL == 32 ? u2 : 2 * u2 + half);
            float kk[QF];
            lds_dv(kk, kt + jl * HEAD_DIM + sub * DV);
#if KL == 16
            lds_dv(kk + DV, kt + jl * HEAD_DIM + sub * DV + 16 * DV);
#endif
            float d[8];
#pragma unroll
            for (int g = 0; g < 8; g++) {
                d[g] = 0.f;
                if (g < GROUP) {
#pragma unroll
                    for (int e = 0; e < QF; e++) d[g] = fmaf(qr[g][e], kk[e], d[g]);
                }
            }
            // Halve the set of values at each step: lane l keeps the
            // half its bit selects, adds its partner's other half.
            constexpr int W = KL / 2;  // 16, then 8, 4 (KL = 32) or 8, 4, 2 (KL = 16)
            const bool b4 = lane & W, b3 = lane & (W / 2), b2 = lane & (W / 4);
            float e4[4], e2[2], e1;
#pragma unroll
            for (int c = 0; c < 4; c++) e4[c] = (b4 ? d[c + 4] : d[c]) + __shfl_xor_sync(0xffffffffu, b4 ? d[c] : d[c + 4], W);
#pragma unroll
            for (int c = 0; c < 2; c++) e2[c] = (b3 ? e4[c + 2] : e4[c]) + __shfl_xor_sync(0xffffffffu, b3 ? e4[c] : e4[c + 2], W / 2);
            e1 = (b2 ? e2[1] : e2[0]) + __shfl_xor_sync(0xffffffffu, b2 ? e2[0] : e2[1], W / 4);
#pragma unroll
            for (int off = W / 8; off > 0; off >>= 1) e1 += __shfl_xor_sync(0xffffffffu, e1, off);
            const float bias = has_mask && jl < nv ? mask[(size_t)i * S + base + jl] * LOG2E : 0.f;
            sc[u2] = jl < nv ? e1 + bias : -INFINITY;
        }
        // 2. Head hg's running maximum and sum, in the lane; the
        // probabilities and the rescale factor go to the warp's slice.
        float mx = m_run;
#pragma unroll
        for (int u2 = 0; u2 < KPW / (32 / KL); u2++) mx = fmaxf(mx, sc[u2]);
#if KL == 16
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));  // both halves' keys
#endif
        const float corr = mx == -INFINITY ? 1.f : exp2f(m_run - mx);  // 0 when m_run was -inf
        float sum = 0.f;
#pragma unroll
        for (int u2 = 0; u2 < KPW / (32 / KL); u2++) {
            const float p = mx == -INFINITY ? 0.f : exp2f(sc[u2] - mx);
            sum += p;
            if (KL == 32 ? (lane & 3) == 0 : (lane & 1) == 0) wp[warp][KL == 32 ? u2 : 2 * u2 + half][hg] = p;
        }
#if KL == 16
        sum += __shfl_xor_sync(0xffffffffu, sum, 16);
#endif
        l_run = l_run * corr + sum;
        m_run = mx;
        if (writer) wp[warp][KPW][hg] = corr;
        __syncwarp();
        // 3. acc = acc·corr + Σ p·V over this warp's keys.
        float pr[8];
        lds8(pr, wp[warp][KPW]);
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            if (pr[g] != 1.f) {  // the same in every lane: the branch does not diverge
#pragma unroll
                for (int e = 0; e < DV; e++) acc[g][e] *= pr[g];
            }
        }
#pragma unroll
        for (int u = 0; u < KPW; u++) {
            const int jl = warp + SW * u;
            if (jl < nv) {
                float vv[DV];
                lds_dv(vv, vt + jl * HEAD_DIM + e0);
                lds8(pr, wp[warp][u]);
#pragma unroll
                for (int g = 0; g < GROUP; g++) {
#pragma unroll
                    for (int e = 0; e < DV; e++) acc[g][e] = fmaf(pr[g], vv[e], acc[g][e]);
                }
            }
        }
#endif
        __syncwarp();  // wp is rewritten by the next tile
        if (t + SST < nt && !(ANAT & ANAT_NO_COPY)) {
            __syncthreads();  // every warp is done with stage s
            if (tid == 0) {
                // Order the block's reads of the stage before the copy engine's writes.
                asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
                stream_issue(stage, bars, kh, vh, t + SST, n);
            }
        }
    }

#if (ANAT & ANAT_NO_MATH) && (ANAT & ANAT_KEEP_Q)
#pragma unroll
    for (int g = 0; g < GROUP; g++)
#pragma unroll
        for (int f = 0; f < QF; f++) acc[0][0] += qr[g][f];
#endif
    // The warps' states, merged: the block's state, written for the merge.
    // Every copy has landed; once every warp has read its last tile, the
    // stages are free.
    __syncthreads();
    float* red = stage;  // [SW][GROUP][HEAD_DIM]
#pragma unroll
    for (int g = 0; g < GROUP; g++)
#pragma unroll
        for (int e = 0; e < DV; e++) red[(warp * GROUP + g) * HEAD_DIM + e0 + e] = acc[g][e];
    if (writer && hg < GROUP) {
        wm[warp][hg] = m_run;
        wl[warp][hg] = l_run;
    }
    __syncthreads();
    for (int c = tid; c < C4; c += SW * 32) {
        const int g = c / (HEAD_DIM / 4), e = (c % (HEAD_DIM / 4)) * 4;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < SW; w++) M = fmaxf(M, wm[w][g]);
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        float ls = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < SW; w++) {
                const float cw = exp2f(wm[w][g] - M);  // 0 for a warp that saw no key
                const float4 x = *(const float4*)(red + (w * GROUP + g) * HEAD_DIM + e);
                o.x = fmaf(cw, x.x, o.x); o.y = fmaf(cw, x.y, o.y); o.z = fmaf(cw, x.z, o.z); o.w = fmaf(cw, x.w, o.w);
                ls = fmaf(cw, wl[w][g], ls);
            }
        }
        const size_t at = ((size_t)i * Hq + h * GROUP + g) * splits + split;
        __stcg((float4*)(part_o + at * HEAD_DIM + e), o);
        if (e == 0) __stcg((float2*)(part_ml + at * 2), make_float2(M, ls));
    }

    // With mergers 0 the merge is attention_decode_merge's, launched after
    // this one: the block leaves, and its shared memory is free for the
    // next launch's blocks.
    if (mergers == 0) return;
    // Count this block done. The barrier orders every thread's writes
    // before thread 0's count, whose release makes them visible with it
    // (and its acquire, in the blocks that merge, the other blocks' writes).
    // The last nm blocks of a (h, i) to count merge, one a share of the
    // GROUP heads (heads r, r + nm, … for the r-th of them): each waits
    // until every block has counted, then reads only its heads' states, so
    // the merge's reads from L2 are spread over nm multiprocessors instead
    // of one. Decode asks for it (mergers > 1) only when the whole grid runs
    // at once, so that a waiting block never holds a multiprocessor that a
    // block still to count needs. The mergers count themselves out in
    // count[L·H + i·H + h], and the last one resets both counts for the next
    // launch, once no merger reads them any more.
    __syncthreads();
    const int nm = SPREAD ? max(1, min(mergers, min(splits, GROUP))) : 1;
    if (tid == 0) {
        unsigned int* c = count + (size_t)i * gridDim.y + h;
        unsigned int before;
        asm volatile("atom.add.acq_rel.gpu.u32 %0, [%1], 1;" : "=r"(before) : "l"(c) : "memory");
        const int r = (int)before - (splits - nm);  // < 0: not a merger
        if (r >= 0 && nm > 1) {
            unsigned int now = before + 1;
            while (now < (unsigned int)splits)
                asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(now) : "l"(c) : "memory");
            unsigned int* x = count + ((size_t)gridDim.z + i) * gridDim.y + h;
            unsigned int done;
            asm volatile("atom.add.relaxed.gpu.u32 %0, [%1], 1;" : "=r"(done) : "l"(x) : "memory");
            if (done == (unsigned int)nm - 1) {
                *c = 0;
                *x = 0;
            }
        } else if (r >= 0) {
            *c = 0;  // the last block: every block of this (h, i) has counted
        }
        last = r;
    }
    __syncthreads();
    if (last < 0 || (ANAT & ANAT_NO_MERGE)) return;
    // The merge of heads r, r + nm, …: parts threads share a column
    // (chunks part, part + parts, …), and their states are merged in
    // shared memory.
    const int r = last, nh = (GROUP - 1 - r) / nm + 1, cols = nh * (HEAD_DIM / 4);
    const int parts = max(1, SW * 32 / cols);
    const int col = tid % cols, part = tid / cols;
    const int g = r + col / (HEAD_DIM / 4) * nm, e = (col % (HEAD_DIM / 4)) * 4;
    const size_t row = (size_t)i * Hq + h * GROUP + g;
    MergeState st = merge_init();
    if (part < parts) merge_chunks(st, part_o + row * splits * HEAD_DIM + e, part_ml + row * splits * 2, splits, part, parts);
    merge_parts(st, (float4*)stage, parts, cols, part, col);
    if (part == 0) merge_write(out + row * HEAD_DIM + e, st);
}

#endif  // TCM

// attention_decode_stream's merge as a launch of its own, for a launch of
// it with mergers 0 (its blocks then write their states and leave):
// grid (Hq, L), 128 threads a block, one block a query head and row. In a
// graph with programmatic dependent launch the next launch's blocks, whose
// shared memory the merging blocks no longer hold, start streaming their
// keys while this one merges; they wait for it before they overwrite the
// states it reads.
extern "C" __global__ void __launch_bounds__(128) attention_decode_merge(
        float* __restrict__ out, const float* __restrict__ part_o, const float* __restrict__ part_ml, int splits
        TRACE_PARAMS) {
    __shared__ __align__(16) float4 pa[128 + 64];  // merge_parts: [parts][cols] float4, then float2
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#if TRACE
    // The merge's block stamps its start, the wait's return and its end
    // (e = 0, 1, 5) into its own buffer, as the stream kernel's do.
    unsigned long long* tr = trace + ((size_t)tstep * gridDim.x * gridDim.y + blockIdx.y * gridDim.x + blockIdx.x) * TRN;
    if (threadIdx.x == 0) trace_stamp(tr, 0, 0.f);
#endif
    asm volatile("griddepcontrol.wait;" ::: "memory");
#if TRACE
    if (threadIdx.x == 0) trace_stamp(tr, 1, 0.f);
#endif
    if (ANAT & (ANAT_NO_MERGE | ANAT_EMPTY)) {  // the benchmark's anatomy: a launch that merges nothing
#if TRACE
        if (threadIdx.x == 0) trace_stamp(tr, 5, 0.f);
#endif
        return;
    }
    constexpr int cols = HEAD_DIM / 4, parts = 128 / cols;
    const int col = threadIdx.x % cols, part = threadIdx.x / cols, e = col * 4;
    const size_t row = (size_t)blockIdx.y * gridDim.x + blockIdx.x;
    MergeState st = merge_init();
    if (part < parts) merge_chunks(st, part_o + row * splits * HEAD_DIM + e, part_ml + row * splits * 2, splits, part, parts);
    merge_parts(st, pa, parts, cols, part, col);
    if (part == 0) merge_write(out + row * HEAD_DIM + e, st);
#if TRACE
    if (threadIdx.x == 0) trace_stamp(tr, 5, 0.f);
#endif
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
