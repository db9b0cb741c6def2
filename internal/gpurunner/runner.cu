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
// Paged attention over bf16 pages on the tensor cores, for any mix of
// decode rows and prefill rows after a cached context (the metadata of
// Week 3 Day 4: tables, info, row_seq). One block of 4 warps per (query
// row, key/value head, range of keys); the GROUP query heads of that
// key/value head are the rows of one 16-row matrix fragment (heads past
// GROUP are zeros). Each warp takes 32 keys at a time on its own:
//   1. lane i copies key i and value i (HEAD_DIM bf16 each, 16 bytes at a
//      time) from its page into the warp's shared memory;
//   2. S = Q·Kᵀ, 16 x 32, with mma.m16n8k16 (Q in registers as bf16, K
//      through ldmatrix);
//   3. an online softmax per head row (the 4 lanes of a row exchange their
//      maxima and sums by shuffles), once per 32 keys;
//   4. O += P·V with P taken straight from S's registers as bf16 and V
//      through ldmatrix.trans.
// At the end the 4 warps' states are merged through shared memory. The
// arithmetic is a few dozen matrix instructions per 32 keys, so the kernel
// runs at the rate the pages are read; the scalar version spent a
// multiply-add per key, feature and head, and ran at a quarter of it.
//
// With splits > 1 (grid Z), block z takes the z-th of `splits` ranges of
// whole tiles of 128 of its row's keys and writes its unnormalised sums,
// maximum and total to part (flash-decoding): a step of few long
// sequences still fills the GPU. paged_attention_merge combines them.
//   part    float32 [T][Hq][splits][HEAD_DIM + 2]
// Dynamic shared memory: ATT_SMEM bytes.
#define TILE 128                 // keys a block takes per round: 4 warps x 32
#define KPAD (HEAD_DIM + 8)      // bf16 per key row in shared memory: rows 16 bytes apart in banks
#define ATT_SMEM (4 * 2 * 32 * KPAD * 2)

__device__ __forceinline__ void att_mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned int att_smem(const void* p) {
    unsigned int r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }\n" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void att_ldsm4(unsigned int* r, unsigned int addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

__device__ __forceinline__ void att_ldsm4t(unsigned int* r, unsigned int addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// Two floats as a bf16 pair, the first in the low half.
__device__ __forceinline__ unsigned int bf2(float lo, float hi) {
    return (unsigned int)f2bf(lo) | ((unsigned int)f2bf(hi) << 16);
}

extern "C" __global__ void __launch_bounds__(TILE) paged_attention_bf16(
        float* __restrict__ out, float* __restrict__ part, const float* __restrict__ q,
        const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        const int* __restrict__ tables, const int* __restrict__ info, const int* __restrict__ row_seq,
        int width, int page_size, float scale) {
    constexpr int KS = HEAD_DIM / 16;  // k-steps of S = Q·Kᵀ
    constexpr int NT = HEAD_DIM / 8;   // 8-wide column tiles of O
    const int row = blockIdx.x, h = blockIdx.y, H = gridDim.y, Hq = H * GROUP;
    const int z = blockIdx.z, splits = gridDim.z;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane / 4, t4 = lane % 4;  // a lane's fragment row (head) and column pair
    const int s = row_seq[row];
    const int context = info[s * 3], first = info[s * 3 + 2];
    const int visible = context + (row - first) + 1;
    const int* table = tables + (size_t)s * width;
    const int tiles = (visible + TILE - 1) / TILE, per = (tiles + splits - 1) / splits;
    const int jbeg = min(visible, z * per * TILE), jend = min(visible, (z + 1) * per * TILE);

    extern __shared__ __align__(16) unsigned short att_sh[];
    unsigned short* ks = att_sh + warp * 2 * 32 * KPAD;  // this warp's 32 keys, then its 32 values
    unsigned short* vs = ks + 32 * KPAD;

    // Q as the A fragments of S: row g is head g (scaled into base 2), rows
    // g + 8 and heads past GROUP are zeros.
    unsigned int qa[KS][4];
    {
        const float* qi = q + ((size_t)row * Hq + h * GROUP) * HEAD_DIM;
        const float f = scale * LOG2E;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            const int c0 = kk * 16 + 2 * t4;
            qa[kk][0] = g < GROUP ? bf2(qi[g * HEAD_DIM + c0] * f, qi[g * HEAD_DIM + c0 + 1] * f) : 0u;
            qa[kk][1] = 0u;
            qa[kk][2] = g < GROUP ? bf2(qi[g * HEAD_DIM + c0 + 8] * f, qi[g * HEAD_DIM + c0 + 9] * f) : 0u;
            qa[kk][3] = 0u;
        }
    }
    float o[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m = -INFINITY, l = 0.f;  // row g's running maximum and sum (base 2)

    for (int j0 = jbeg + warp * 32; j0 < jend; j0 += TILE) {
        // 1. Key and value j0 + lane into shared memory (zeros past jend).
        {
            const int j = j0 + lane;
            uint4* kd = (uint4*)(ks + lane * KPAD);
            uint4* vd = (uint4*)(vs + lane * KPAD);
            if (j < jend) {
                const size_t at = (((size_t)table[j / page_size] * page_size + j % page_size) * H + h) * HEAD_DIM;
                const uint4* kr = (const uint4*)(k + at);
                const uint4* vr = (const uint4*)(v + at);
                uint4 kb[HEAD_DIM / 8], vb[HEAD_DIM / 8];
#pragma unroll
                for (int c = 0; c < HEAD_DIM / 8; c++) {
                    kb[c] = kr[c];
                    vb[c] = vr[c];
                }
#pragma unroll
                for (int c = 0; c < HEAD_DIM / 8; c++) {
                    kd[c] = kb[c];
                    vd[c] = vb[c];
                }
            } else {
                const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
                for (int c = 0; c < HEAD_DIM / 8; c++) {
                    kd[c] = zero;
                    vd[c] = zero;
                }
            }
        }
        __syncwarp();
        // 2. S = Q·Kᵀ: 4 column tiles of 8 keys.
        float sc[4][4];
#pragma unroll
        for (int n = 0; n < 4; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
#pragma unroll
        for (int n = 0; n < 4; n++) {
#pragma unroll
            for (int kk = 0; kk < KS; kk += 2) {
                // Keys 8n … 8n+7, features 16kk … 16kk+31: the B fragments
                // of two k-steps (one when KS is odd).
                unsigned int b[4];
                const int col = kk * 16 + 8 * (lane / 8);
                att_ldsm4(b, att_smem(ks + (8 * n + lane % 8) * KPAD + min(col, HEAD_DIM - 8)));
                att_mma(sc[n], qa[kk], b[0], b[1]);
                if (kk + 1 < KS) att_mma(sc[n], qa[kk + 1], b[2], b[3]);
            }
        }
        // 3. Online softmax of row g over this warp's 32 keys: lane holds
        // keys 8n + 2·t4 and 8n + 2·t4 + 1 of row g in sc[n][0], sc[n][1].
        float mx = m;
#pragma unroll
        for (int n = 0; n < 4; n++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                if (j0 + 8 * n + 2 * t4 + e >= jend) sc[n][e] = -INFINITY;
                mx = fmaxf(mx, sc[n][e]);
            }
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float corr = exp2f(m - mx);  // 0 on the first keys (m = -inf, mx finite)
        float sum = 0.f;
        unsigned int pa[2][4];  // P as the A fragments of two k-steps of 16 keys
#pragma unroll
        for (int n = 0; n < 4; n++) {
            float p0 = exp2f(sc[n][0] - mx), p1 = exp2f(sc[n][1] - mx);
            sum += p0 + p1;
            // Column tile n is keys 8n … 8n+7: k-step n / 2, half n % 2.
            pa[n / 2][(n % 2) * 2] = bf2(p0, p1);
            pa[n / 2][(n % 2) * 2 + 1] = 0u;  // rows g + 8: no head
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l = l * corr + sum;
        m = mx;
        // 4. O = O·corr + P·V: 2 k-steps of 16 keys, NT column tiles.
#pragma unroll
        for (int j = 0; j < NT; j++) {
            o[j][0] *= corr;
            o[j][1] *= corr;
        }
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
#pragma unroll
            for (int j = 0; j < NT; j += 2) {
                // Keys 16kk … 16kk+15, features 8j … 8j+15, transposed.
                unsigned int b[4];
                const int key = 16 * kk + (lane % 8) + 8 * ((lane / 8) % 2);
                const int col = 8 * j + 8 * (lane / 16);
                att_ldsm4t(b, att_smem(vs + key * KPAD + min(col, HEAD_DIM - 8)));
                att_mma(o[j], pa[kk], b[0], b[1]);
                if (j + 1 < NT) att_mma(o[j + 1], pa[kk], b[2], b[3]);
            }
        }
        __syncwarp();
    }

    // Merge the 4 warps: rows g < GROUP of each warp's O, m and l.
    __syncthreads();
    float* so = (float*)att_sh;                      // [4][GROUP][HEAD_DIM]
    float* sml = so + 4 * GROUP * HEAD_DIM;          // [4][GROUP][2]
    if (g < GROUP) {
#pragma unroll
        for (int j = 0; j < NT; j++) {
            so[(warp * GROUP + g) * HEAD_DIM + 8 * j + 2 * t4] = o[j][0];
            so[(warp * GROUP + g) * HEAD_DIM + 8 * j + 2 * t4 + 1] = o[j][1];
        }
        if (t4 == 0) {
            sml[(warp * GROUP + g) * 2] = m;
            sml[(warp * GROUP + g) * 2 + 1] = l;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < GROUP * HEAD_DIM; i += TILE) {
        const int gg = i / HEAD_DIM, d = i % HEAD_DIM;
        float M = -INFINITY;
        for (int w = 0; w < 4; w++) M = fmaxf(M, sml[(w * GROUP + gg) * 2]);
        float acc = 0.f, tot = 0.f;
        for (int w = 0; w < 4; w++) {
            const float mw = sml[(w * GROUP + gg) * 2];
            const float c = mw == -INFINITY ? 0.f : exp2f(mw - M);  // a warp that saw no key weighs 0
            acc += so[(w * GROUP + gg) * HEAD_DIM + d] * c;
            tot += sml[(w * GROUP + gg) * 2 + 1] * c;
        }
        const size_t hq = (size_t)row * Hq + h * GROUP + gg;
        if (splits == 1) {
            out[hq * HEAD_DIM + d] = acc / tot;
        } else {
            float* p = part + (hq * splits + z) * (HEAD_DIM + 2);
            p[d] = acc;
            if (d == 0) {
                p[HEAD_DIM] = M;
                p[HEAD_DIM + 1] = tot;
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
