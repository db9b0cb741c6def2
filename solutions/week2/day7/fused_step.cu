// Week 2 Day 7, the reference's fused decode step on an NVIDIA GPU: one row,
// captured once as a graph, in 5 kernels a layer instead of 10, because on
// a small model the step costs what its launches cost, not what its bytes
// do. Compiled after Day 4's matrix-vector core (matmul_fast.cu with
// -DMATVEC_CORE_ONLY): mv_stage_f, mv_dot_f, mv_reduce and MV_P, 4 rows a
// warp. Each kernel comes in three formats (F of the core): bf16 (_bf16),
// 4-bit on float x (_q4, with Options.FloatActivations) and 4-bit on x
// in three int8 parts (_q4x8, the step's default for 4-bit weights).
//
//   fs_qkv      RMSNorm (ln1) folded in, q/k/v rows, bias, RoPE, k and v into the cache
//   fs_attention_wide decode attention over pos[0] + 1 keys, ranges merged in the same launch
//   fs_resid    h += x·Wᵀ (o_proj, down_proj): the residual add as the epilogue
//   fs_gateup   RMSNorm (ln2) folded in, gate and up rows paired, silu(g)·u written
//   fs_head     the final norm folded in, the logits, and the greedy choice
//
// The norm is folded as RMSNorm(h)·W = inv · (h ⊙ ln)·W, inv = 1/sqrt(mean(h²) + eps):
// every block stages h ⊙ ln (Day 4's layout) and the sum of squares of the
// row it read, and multiplies its dot products by inv at the end. Each
// kernel takes, after its own arguments, W's words, scales, biases and
// group (bf16: scales and biases unused, group 0) and wk, the warps that
// share a set of MV_P rows. Grids are grid-stride over the sets.

#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif

__device__ __forceinline__ float fs_inv(float ss, int E, float eps) { return rsqrtf(ss / (float)E + eps); }

// The captured step launches every kernel below with Overlap (programmatic
// dependent launch, Day 4's mv_after_previous): the next kernel's blocks
// are scheduled while this one's last blocks run.

// ---- x rounded once, by the kernel that writes it (4-bit W). ----
//
// On x in int8 parts every block of a kernel used to stage all of x itself
// (mq_stage): 264 blocks reading x from L2 and rounding it, before any
// product could start, 9 times a step on a two-layer 7B. Instead the
// kernel that writes x also rounds it, once, into mq_stage's layout in
// device memory ("published" x), and the matrix kernels read the codes
// from there in their loop (FS_PUB 1; 0 is the build that stages x in
// every block, kept for the benchmark):
//   - fs_publish rounds the embedding for the first layer's fs_qkv;
//   - fs_attention_wide rounds its output for o_proj, a warp a slice of 32
//     where the block writes a head's 128 values;
//   - fs_resid and fs_gateup, when they publish, run in blocks of 16 warps
//     whose sets of rows are whole slices of 32 outputs: a block keeps its
//     outputs in shared memory and rounds its slices after its last set, a
//     warp a slice (fs_publish_sets). (Sets of 16 rows, half a slice, would
//     leave each slice to two blocks, which must then find out which of
//     them finishes it: a first version counted rows with an atomic per
//     slice, and its fences and atomics at the end of every producer cost
//     more than the rounding they saved.)
//   - fs_resid rounds h times the next norm's weights (ln1 of the next
//     layer, ln2, or the final norm) and writes the slice's Σh², from which
//     the next kernel finds its inv (fs_pub_inv);
//   - fs_head, which takes 18 sets a block, copies the codes into shared
//     memory first; the others read them from device memory in their loop.
#ifndef FS_PUB
#define FS_PUB 1
#endif

template <int F>
__device__ __forceinline__ constexpr bool fs_published() {
    return F == 2 && FS_PUB;
}

// inv of RMSNorm from the NS published sums of squares of a slice of 32,
// to every lane: each warp adds them in the same order, so all agree.
__device__ __forceinline__ float fs_pub_inv(const float* __restrict__ ss, int NS, int E, float eps) {
    float s = 0.0f;
    for (int i = threadIdx.x & 31; i < NS; i += 32) s += ss[i];
    return fs_inv(warp_sum(s), E, eps);
}

// inv of the RMSNorm a kernel folds in: from the published sums on x in
// int8 parts, else from staging h ⊙ ln in the block's shared memory.
template <int F>
__device__ __forceinline__ float fs_norm_inv(const float* __restrict__ xin_ss, const float* __restrict__ h,
                                             const float* __restrict__ ln, int E, float eps) {
    extern __shared__ float4 fs_smem[];
    if constexpr (fs_published<F>())
        return fs_pub_inv(xin_ss, E / 32, E, eps);
    else
        return fs_inv(mv_stage_f<F>((float*)fs_smem, h, ln, E), E, eps);
}

// Keeps output r (< 32) of set (set = blockIdx.x + gridDim.x·k, 32
// outputs a set) in vals for fs_publish_sets.
__device__ __forceinline__ void fs_keep(float* vals, int set, int r, float v) {
    vals[32 * ((set - (int)blockIdx.x) / (int)gridDim.x) + r] = v;
}

// After a producer's sets (set = blockIdx.x, + gridDim.x, … below nsets),
// called by every thread: set s is the slice of 32 outputs 32·s … 32·s + 31,
// whose values done() kept in vals (vals[32·k + r] for the block's k-th
// set), so the block rounds its own slices into pub, a warp a slice (times
// ln when not null, sums of squares into ss when not null).
__device__ __forceinline__ void fs_publish_sets(const float* vals, const float* __restrict__ ln, unsigned char* pub,
                                                float* ss, int N, int nsets) {
    if (!FS_PUB || pub == nullptr) return;
    __syncthreads();
    const int lane = threadIdx.x & 31, warps = blockDim.x / 32;
    for (int k = threadIdx.x / 32; (int)blockIdx.x + (int)gridDim.x * k < nsets; k += warps) {
        const int s = (int)blockIdx.x + (int)gridDim.x * k, e = 32 * s + lane;
        mq_put(pub, ss, N / 32, s, vals[32 * k + lane], ln != nullptr ? __ldg(ln + e) : 1.0f);
    }
}

// A publishing producer must have been launched with sets of exactly 32
// outputs (GPUModel.publishSplit); anything else would leave slices unwritten.
__device__ __forceinline__ void fs_check_publish(const unsigned char* pub, int outputs_per_set) {
    if (FS_PUB && pub != nullptr && outputs_per_set != 32) __trap();
}

// The prologue of the matrix kernels below. W is read-only for the whole
// step, so each lane may ask for the first slices it will read of its
// first set of rows (rows) before the block waits for the kernel ahead and
// stages x: those bytes travel while the kernel ahead drains and x is
// staged, instead of after. The slices are those mv_dot_f loads first:
// pf a row, from (warp % wk)·32 + lane, 32·wk apart (pf = 0: none).
template <int F>
__device__ __forceinline__ void fs_prefetch_then_wait(const void* __restrict__ w, const int (&rows)[MV_P], int K,
                                                      int wk, int pf) {
    if (pf != 0) {
        const int ns = F == 0 ? K / 8 : K / 32;  // 16-byte slices a row
        const int first = (threadIdx.x / 32 % wk) * 32 + threadIdx.x % 32, stride = 32 * wk;
#pragma unroll
        for (int p = 0; p < MV_P; p++)
            for (int u = 0; u < pf; u++) {
                const int j = first + u * stride;
                if (j < ns) {
                    const uint4* at = (const uint4*)w + (size_t)rows[p] * ns + j;
                    asm volatile("prefetch.global.L1 [%0];" ::"l"(at));
                }
            }
    }
    mv_after_previous();
}

// The q/k/v projection of the normed h and its epilogue. A unit is two
// neighbouring pairs (i, i + D/2), (i + 1, i + 1 + D/2) of one head (heads
// counted q, then k, then v), so the rotation happens where both halves
// are: bias added, q and k rotated at position pos[0], q written to its
// buffer, k and v into the cache.
template <int F>
__device__ __forceinline__ void fs_qkv(float* __restrict__ q, float* __restrict__ kc, float* __restrict__ vc,
                                       const float* __restrict__ h, const float* __restrict__ ln,
                                       const float* __restrict__ bias, const float* __restrict__ cos_t,
                                       const float* __restrict__ sin_t, const int* __restrict__ pos, int E,
                                       int Hq, int H, int D, int cap, int max_pos, float eps,
                                       const void* __restrict__ w, const unsigned short* __restrict__ scales,
                                       const unsigned short* __restrict__ biases, int group, int wk, int pf,
                                       const unsigned char* __restrict__ xin, const float* __restrict__ xin_ss) {
    extern __shared__ float4 fs_smem[];
    const float* xs = fs_published<F>() ? (const float*)xin : (const float*)fs_smem;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, half = D / 2;
    const int units = (Hq + 2 * H) * half / 2, per = (int)blockDim.x / 32 / wk;
    float inv = 0.0f;
    int p0 = 0;
    mv_sets<F>(
            w, scales, biases, xs, E, group, wk, (units + per - 1) / per,
            [&](int set, int (&rows)[MV_P]) {
                const int t = 2 * min(set * per + warp / wk, units - 1), r0 = t / half * D + t % half;
                rows[0] = r0, rows[1] = r0 + 1, rows[2] = r0 + half, rows[3] = r0 + half + 1;
            },
            [&](const int (&rows)[MV_P]) {
                fs_prefetch_then_wait<F>(w, rows, E, wk, mv_pipelined<F>() ? 0 : pf);
                inv = fs_norm_inv<F>(xin_ss, h, ln, E, eps);
                p0 = pos[0];
            },
            [&](int set, const float (&tot)[MV_P]) {
                const int u = set * per + warp / wk;
                if (warp % wk != 0 || lane >= 2 || u >= units || p0 < 0 || p0 >= cap || p0 >= max_pos) return;
                const int t = 2 * u, hh = t / half, i = t % half, r0 = hh * D + i;
                // lane 0 takes pair i, lane 1 pair i + 1
                const int c = r0 + lane;
                const float x0 = (lane ? tot[1] : tot[0]) * inv + bias[c];
                const float x1 = (lane ? tot[3] : tot[2]) * inv + bias[c + half];
                float* dst;
                float y0 = x0, y1 = x1;
                if (hh < Hq + H) {
                    const float cs = cos_t[(size_t)p0 * half + i + lane], sn = sin_t[(size_t)p0 * half + i + lane];
                    y0 = x0 * cs - x1 * sn;
                    y1 = x0 * sn + x1 * cs;
                    dst = hh < Hq ? q + (size_t)hh * D : kc + ((size_t)(hh - Hq) * cap + p0) * D;
                } else {
                    dst = vc + ((size_t)(hh - Hq - H) * cap + p0) * D;
                }
                dst[i + lane] = y0;
                dst[i + lane + half] = y1;
            });
}

// h[n] += x·W[n] for the N rows of W: o_proj (x the attention) and
// down_proj (x silu(g)·u), the residual add done where the sum is made.
// With pub not null it publishes h times pub_ln for the next kernel.
template <int F>
__device__ __forceinline__ void fs_resid(float* __restrict__ hres, const float* __restrict__ x, int N, int K,
                                         const void* __restrict__ w, const unsigned short* __restrict__ scales,
                                         const unsigned short* __restrict__ biases, int group, int wk, int pf,
                                         const unsigned char* __restrict__ xin, unsigned char* __restrict__ pub,
                                         float* __restrict__ pub_ss, const float* __restrict__ pub_ln) {
    extern __shared__ float4 fs_smem[];
    const float* xs = fs_published<F>() ? (const float*)xin : (const float*)fs_smem;
    float* vals = (float*)fs_smem;  // the outputs, when publishing
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, per = (int)blockDim.x / 32 / wk;
    const int units = (N + MV_P - 1) / MV_P, nsets = (units + per - 1) / per;
    fs_check_publish(pub, per * MV_P);
    mv_sets<F>(
            w, scales, biases, xs, K, group, wk, nsets,
            [&](int set, int (&rows)[MV_P]) { mv_rows(set, per, wk, N, rows); },
            [&](const int (&rows)[MV_P]) {
                fs_prefetch_then_wait<F>(w, rows, K, wk, mv_pipelined<F>() ? 0 : pf);
                if constexpr (!fs_published<F>()) mv_stage_f<F>((float*)fs_smem, x, nullptr, K);
            },
            [&](int set, const float (&tot)[MV_P]) {
                const int n0 = (set * per + warp / wk) * MV_P;
                if (warp % wk == 0 && lane < MV_P && n0 + lane < N) {
                    const float v = hres[n0 + lane] + mv_lane_sum(tot, lane);
                    hres[n0 + lane] = v;
                    if (FS_PUB && pub != nullptr) fs_keep(vals, set, n0 % 32 + lane, v);
                }
            });
    fs_publish_sets(vals, pub_ln, pub, pub_ss, N, nsets);
}

// act[i] = silu(g_i)·u_i with g = RMSNorm(h)·gate, u = RMSNorm(h)·up, the
// gate rows 0 … I-1 and the up rows I … 2I-1 of W. A unit is rows i, i + 1
// of both halves.
template <int F>
__device__ __forceinline__ void fs_gateup(float* __restrict__ act, const float* __restrict__ h,
                                          const float* __restrict__ ln, int I, int E, float eps,
                                          const void* __restrict__ w, const unsigned short* __restrict__ scales,
                                          const unsigned short* __restrict__ biases, int group, int wk, int pf,
                                          const unsigned char* __restrict__ xin, const float* __restrict__ xin_ss,
                                          unsigned char* __restrict__ pub) {
    extern __shared__ float4 fs_smem[];
    const float* xs = fs_published<F>() ? (const float*)xin : (const float*)fs_smem;
    float* vals = (float*)fs_smem;  // the outputs, when publishing
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, per = (int)blockDim.x / 32 / wk, units = I / 2;
    const int nsets = (units + per - 1) / per;
    fs_check_publish(pub, 2 * per);
    float inv = 0.0f;
    mv_sets<F>(
            w, scales, biases, xs, E, group, wk, nsets,
            [&](int set, int (&rows)[MV_P]) {
                const int i = 2 * min(set * per + warp / wk, units - 1);
                rows[0] = i, rows[1] = i + 1, rows[2] = I + i, rows[3] = I + i + 1;
            },
            [&](const int (&rows)[MV_P]) {
                fs_prefetch_then_wait<F>(w, rows, E, wk, mv_pipelined<F>() ? 0 : pf);
                inv = fs_norm_inv<F>(xin_ss, h, ln, E, eps);
            },
            [&](int set, const float (&tot)[MV_P]) {
                const int u = set * per + warp / wk, i = 2 * u;
                if (warp % wk == 0 && lane < 2 && u < units) {
                    const float g = (lane ? tot[1] : tot[0]) * inv, up = (lane ? tot[3] : tot[2]) * inv;
                    const float a = g / (1.0f + expf(-g)) * up;
                    act[i + lane] = a;
                    if (FS_PUB && pub != nullptr) fs_keep(vals, set, i % 32 + lane, a);
                }
            });
    fs_publish_sets(vals, nullptr, pub, nullptr, I, nsets);
}

// The better of two (value, index) candidates: the larger value, and on a
// tie the smaller index, as the CPU's argmax.
__device__ __forceinline__ void fs_best(float& v, int& i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) {
        v = ov;
        i = oi;
    }
}

// The block's best (value, index) to every thread.
__device__ __forceinline__ void fs_block_best(float& v, int& i) {
    __shared__ float bv[32];
    __shared__ int bi[32];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        fs_best(v, i, __shfl_xor_sync(0xffffffffu, v, off), __shfl_xor_sync(0xffffffffu, i, off));
    if ((threadIdx.x & 31) == 0) {
        bv[threadIdx.x / 32] = v;
        bi[threadIdx.x / 32] = i;
    }
    __syncthreads();
    v = bv[0];
    i = bi[0];
    for (int w = 1; w < (int)(blockDim.x / 32); w++) fs_best(v, i, bv[w], bi[w]);
    __syncthreads();
}

// logits = RMSNorm(h)·Wᵀ (the final norm folded in), then the greedy
// choice without another launch: each block writes the best of its logits
// to part (value bits, index), and the last block to finish (a counter,
// count[0], which it sets back to 0) picks the best of those, writes it
// to token[0] and moves pos[0] on by one.
template <int F>
__device__ __forceinline__ void fs_head(float* __restrict__ logits, int* __restrict__ part,
                                        int* __restrict__ count, int* __restrict__ token, int* __restrict__ pos,
                                        const float* __restrict__ h, const float* __restrict__ ln, int N, int E,
                                        float eps, const void* __restrict__ w,
                                        const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases, int group, int wk, int pf,
                                        const unsigned char* __restrict__ xin, const float* __restrict__ xin_ss) {
    extern __shared__ float4 fs_smem[];
    __shared__ bool last;
    float* xs = (float*)fs_smem;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, per = (int)blockDim.x / 32 / wk;
    const int units = (N + MV_P - 1) / MV_P;
    float inv = 0.0f, best = -INFINITY;
    int bi = N;
    mv_sets<F>(
            w, scales, biases, xs, E, group, wk, (units + per - 1) / per,
            [&](int set, int (&rows)[MV_P]) { mv_rows(set, per, wk, N, rows); },
            [&](const int (&rows)[MV_P]) {
                fs_prefetch_then_wait<F>(w, rows, E, wk, mv_pipelined<F>() ? 0 : pf);
                if constexpr (fs_published<F>()) {
                    // many sets a block: the codes copied once into shared memory
                    const int n16 = (MQ_LEVELS * E + 8 * (E / 32)) / 16;
                    for (int i = threadIdx.x; i < n16; i += blockDim.x) ((uint4*)xs)[i] = ((const uint4*)xin)[i];
                }
                inv = fs_norm_inv<F>(xin_ss, h, ln, E, eps);
                if constexpr (fs_published<F>()) __syncthreads();
            },
            [&](int set, const float (&tot)[MV_P]) {
                const int n0 = (set * per + warp / wk) * MV_P;
                if (warp % wk == 0 && lane < MV_P && n0 + lane < N) {
                    const float t = mv_lane_sum(tot, lane) * inv;
                    logits[n0 + lane] = t;
                    if (bi == N || t > best) {  // a lane's rows come in increasing order
                        best = t;
                        bi = n0 + lane;
                    }
                }
            });
    fs_block_best(best, bi);
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = __float_as_int(best);
        part[2 * blockIdx.x + 1] = bi;
        __threadfence();  // the partial is visible before the count says so
        last = atomicAdd(count, 1) == (int)gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    best = -INFINITY;
    bi = N;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += blockDim.x)
        fs_best(best, bi, __int_as_float(__ldcg(part + 2 * b)), __ldcg(part + 2 * b + 1));
    fs_block_best(best, bi);
    if (threadIdx.x == 0) {
        token[0] = bi < N ? bi : 0;
        pos[0] += 1;
        count[0] = 0;
    }
}

#define FS_W const void *__restrict__ w, const unsigned short *__restrict__ scales, \
             const unsigned short *__restrict__ biases, int group, int wk, int pf
#define FS_WA w, scales, biases, group, wk, pf
// x published (xin, with the slices' sums of squares xin_ss where a norm
// is folded in), and where to publish (pub, pub_ss, pub_ln)
#define FS_XIN const unsigned char *__restrict__ xin, const float *__restrict__ xin_ss
#define FS_PUBA unsigned char *__restrict__ pub, float *__restrict__ pub_ss, const float *__restrict__ pub_ln

#define FS_KERNELS(SUF, F, LB)                                                                                      \
    extern "C" __global__ void LB fs_qkv_##SUF(                                                                     \
            float* __restrict__ q, float* __restrict__ kc, float* __restrict__ vc, const float* __restrict__ h,     \
            const float* __restrict__ ln, const float* __restrict__ bias, const float* __restrict__ cos_t,          \
            const float* __restrict__ sin_t, const int* __restrict__ pos, int E, int Hq, int H, int D, int cap,     \
            int max_pos, float eps, FS_W, FS_XIN) {                                                                 \
        fs_qkv<F>(q, kc, vc, h, ln, bias, cos_t, sin_t, pos, E, Hq, H, D, cap, max_pos, eps, FS_WA, xin, xin_ss);   \
    }                                                                                                               \
    extern "C" __global__ void LB fs_resid_##SUF(float* __restrict__ hres, const float* __restrict__ x, int N,       \
                                                 int K, FS_W, FS_XIN, FS_PUBA) {                                    \
        fs_resid<F>(hres, x, N, K, FS_WA, xin, pub, pub_ss, pub_ln);                                                \
    }                                                                                                               \
    extern "C" __global__ void LB fs_gateup_##SUF(                                                                  \
            float* __restrict__ act, const float* __restrict__ h, const float* __restrict__ ln, int I, int E,       \
            float eps, FS_W, FS_XIN, FS_PUBA) {                                                                     \
        fs_gateup<F>(act, h, ln, I, E, eps, FS_WA, xin, xin_ss, pub);                                               \
    }                                                                                                               \
    extern "C" __global__ void LB fs_head_##SUF(                                                                    \
            float* __restrict__ logits, int* __restrict__ part, int* __restrict__ count, int* __restrict__ token,   \
            int* __restrict__ pos, const float* __restrict__ h, const float* __restrict__ ln, int N, int E,         \
            float eps, FS_W, FS_XIN) {                                                                              \
        fs_head<F>(logits, part, count, token, pos, h, ln, N, E, eps, FS_WA, xin, xin_ss);                          \
    }

// LB: the launch bounds. The 4-bit kernels run 2 blocks a multiprocessor
// (GPUModel.fusedSplit), which the pipelined core's extra round of
// registers would not leave room for unasked; the bf16 ones are left to
// the compiler (a minimum of 1 block makes it take more registers).
FS_KERNELS(bf16, 0, __launch_bounds__(256))
FS_KERNELS(q4, 1, __launch_bounds__(512, 1))
FS_KERNELS(q4x8, 2, __launch_bounds__(512, 1))

// Publishes x[0:K] times ln (when not null) with the sums of squares of its
// slices (when ss is not null), a warp a slice of 32: the embedding for the
// first layer's fs_qkv.
extern "C" __global__ void __launch_bounds__(256) fs_publish(unsigned char* __restrict__ pub, float* __restrict__ ss,
                                                             const float* __restrict__ x,
                                                             const float* __restrict__ ln, int K) {
    mv_after_previous();
    const int j = (int)(blockIdx.x * blockDim.x + threadIdx.x) / 32, e = 32 * j + (int)threadIdx.x % 32;
    if (j < K / 32) mq_put(pub, ss, K / 32, j, x[e], ln != nullptr ? ln[e] : 1.0f);
}

#ifdef HEAD_DIM
// Decode attention with one trip to memory for a short context: 32 warps
// a block, block (s, hq) for query head hq and range s; a warp takes the
// keys j0 + warp, j0 + warp + 32, … of the range, FS_KPW of them at once,
// their key and value rows loaded together before the first is used, so
// that up to 32·FS_KPW keys cost one wait for memory, not one a key. The
// number of ranges follows the context: ⌈S/(32·FS_KPW)⌉, at most
// gridDim.x (the other blocks return at once), so a context of up to
// 32·FS_KPW positions is one range, written straight to out; longer ones
// are merged by the last block of the head to finish (count[hq], set back
// to 0 by that block).
#define FS_PERL ((HEAD_DIM + 31) / 32)
#define FS_KPW (HEAD_DIM <= 128 ? 8 : 4)
// A lane's columns of the cache rows base, base + 32, … (FS_KPW of them),
// 0 from row j1 on.
__device__ __forceinline__ void fs_rows(float (&r)[FS_KPW][FS_PERL], const float* __restrict__ c, int base, int j1,
                                        int lane) {
#pragma unroll
    for (int i = 0; i < FS_KPW; i++) {
        const int j = base + 32 * i;
#pragma unroll
        for (int p = 0; p < FS_PERL; p++) {
            const int e = lane + 32 * p;
            r[i][p] = j < j1 && e < HEAD_DIM ? c[(size_t)j * HEAD_DIM + e] : 0.f;
        }
    }
}

// Publishes thread e's output value v of query head blockIdx.y (when pub
// is not null): the head's HEAD_DIM values are whole slices of 32, a warp
// each (called by threads e < HEAD_DIM only, whole warps).
__device__ __forceinline__ void fs_attention_publish(unsigned char* pub, float v) {
    if (FS_PUB && HEAD_DIM % 32 == 0 && pub != nullptr)
        mq_put(pub, nullptr, gridDim.y * HEAD_DIM / 32, (blockIdx.y * HEAD_DIM + threadIdx.x) / 32, v, 1.0f);
}

extern "C" __global__ void __launch_bounds__(1024) fs_attention_wide(
        float* __restrict__ out, float* __restrict__ part_o, float* __restrict__ part_ml, int* __restrict__ count,
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
        const int* __restrict__ pos, int cap, int group, float scale, unsigned char* __restrict__ pub) {
    mv_after_previous();
    const int hq = blockIdx.y, h = hq / group, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int S = pos[0] + 1, batch = 32 * FS_KPW;
    const int splits = min((int)gridDim.x, (S + batch - 1) / batch), split = blockIdx.x;
    if (split >= splits) return;
    const int chunk = (S + splits - 1) / splits;
    const int j0 = split * chunk, j1 = min(j0 + chunk, S);
    float qr[FS_PERL], acc[FS_PERL];
#pragma unroll
    for (int p = 0; p < FS_PERL; p++) {
        const int e = lane + 32 * p;
        qr[p] = e < HEAD_DIM ? q[(size_t)hq * HEAD_DIM + e] * scale * 1.4426950408889634f : 0.f;
        acc[p] = 0.f;
    }
    const float* kh = k + (size_t)h * cap * HEAD_DIM;
    const float* vh = v + (size_t)h * cap * HEAD_DIM;
    float m = -INFINITY, l = 0.f;
    for (int base = j0 + warp; base < j1; base += batch) {
        // The keys' rows, then each lane's part of the scores; the values'
        // rows are requested before the scores' shuffles, which hide them.
        float kr[FS_KPW][FS_PERL], vr[FS_KPW][FS_PERL], d[FS_KPW];
        fs_rows(kr, kh, base, j1, lane);
#pragma unroll
        for (int i = 0; i < FS_KPW; i++) {
            d[i] = 0.f;
#pragma unroll
            for (int p = 0; p < FS_PERL; p++) d[i] += qr[p] * kr[i][p];
        }
        fs_rows(vr, vh, base, j1, lane);
        float mb = m;
#pragma unroll
        for (int i = 0; i < FS_KPW; i++) {
            d[i] = warp_sum(d[i]);
            if (base + 32 * i < j1) mb = fmaxf(mb, d[i]);
        }
        const float corr = exp2f(m - mb);
        l *= corr;
#pragma unroll
        for (int p = 0; p < FS_PERL; p++) acc[p] *= corr;
#pragma unroll
        for (int i = 0; i < FS_KPW; i++) {
            const float pj = base + 32 * i < j1 ? exp2f(d[i] - mb) : 0.f;
            l += pj;
#pragma unroll
            for (int p = 0; p < FS_PERL; p++) acc[p] += pj * vr[i][p];
        }
        m = mb;
    }
    // The 32 warps' states into the block's.
    __shared__ float sm[32], sl[32], so[32][HEAD_DIM];
    __shared__ bool last;
#pragma unroll
    for (int p = 0; p < FS_PERL; p++) {
        const int e = lane + 32 * p;
        if (e < HEAD_DIM) so[warp][e] = acc[p];
    }
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < 32; w++) M = fmaxf(M, sm[w]);
    const size_t at = (size_t)hq * gridDim.x + split;
    const int e = threadIdx.x;  // HEAD_DIM <= 1024 = blockDim.x
    if (e < HEAD_DIM) {
        float o = 0.f, sum = 0.f;
        for (int w = 0; w < 32; w++) {
            const float c = sm[w] == -INFINITY ? 0.f : exp2f(sm[w] - M);
            o += so[w][e] * c;
            sum += sl[w] * c;
        }
        if (splits == 1) {
            out[(size_t)hq * HEAD_DIM + e] = o / sum;
            fs_attention_publish(pub, o / sum);
        } else {
            part_o[at * HEAD_DIM + e] = o;
            if (e == 0) {
                part_ml[at * 2] = M;
                part_ml[at * 2 + 1] = sum;
            }
        }
    }
    if (splits == 1) return;
    __threadfence();  // this block's state is visible before the count says so
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(count + hq, 1) == splits - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const float* ml = part_ml + (size_t)hq * gridDim.x * 2;
    M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, __ldcg(ml + 2 * s));
    if (e < HEAD_DIM) {
        float o = 0.f, sum = 0.f;
        for (int s = 0; s < splits; s++) {
            const float ms = __ldcg(ml + 2 * s);
            const float c = ms == -INFINITY ? 0.f : exp2f(ms - M);
            o += __ldcg(part_o + ((size_t)hq * gridDim.x + s) * HEAD_DIM + e) * c;
            sum += __ldcg(ml + 2 * s + 1) * c;
        }
        out[(size_t)hq * HEAD_DIM + e] = o / sum;
        fs_attention_publish(pub, o / sum);
    }
    if (threadIdx.x == 0) count[hq] = 0;
}
#endif
