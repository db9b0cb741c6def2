// Week 2 Day 4, rungs 3 and 4: y = x·Wᵀ on an NVIDIA GPU, fast. Same
// arguments and layouts as matmul.cu. (Provided.)

__device__ __forceinline__ float bf16_lo(unsigned int v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf16_hi(unsigned int v) { return __uint_as_float(v & 0xffff0000u); }

// float32 -> bf16 bits, rounding to nearest even (finite inputs).
__device__ __forceinline__ unsigned int f2bf(float f) {
    unsigned int u = __float_as_uint(f);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
__device__ __forceinline__ unsigned int pack_bf16(float lo, float hi) { return f2bf(lo) | (f2bf(hi) << 16); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// A nibble q at bit 4p of a word (p <= 4) as a float without the slow
// integer conversion: OR-ing the masked word into 2^23 gives 2^23 + q·16^p
// exactly, so one lop3 and one subtraction make q·16^p; x, shared by every
// row, is scaled by 16^-p once instead (a power of two: nothing is rounded).
// The top three nibbles take one shift first.
__device__ __forceinline__ float nibp(unsigned int w, unsigned int mask) {
    return __uint_as_float((w & mask) | 0x4B000000u) - 8388608.0f;
}

// Σ x_i q_i over a word's 8 weights, xs already scaled by 16^-p.
__device__ __forceinline__ float q4_word(unsigned int w, const float* xs, float acc) {
    unsigned int h = w >> 12;
    acc = fmaf(xs[0], nibp(w, 0xFu), acc);
    acc = fmaf(xs[1], nibp(w, 0xF0u), acc);
    acc = fmaf(xs[2], nibp(w, 0xF00u), acc);
    acc = fmaf(xs[3], nibp(w, 0xF000u), acc);
    acc = fmaf(xs[4], nibp(w, 0xF0000u), acc);
    acc = fmaf(xs[5], nibp(h, 0xF00u), acc);
    acc = fmaf(xs[6], nibp(h, 0xF000u), acc);
    acc = fmaf(xs[7], nibp(h, 0xF0000u), acc);
    return acc;
}

// ---- The matrix-vector core: x staged in shared memory. ----
//
// Shared by rung 3's 4-bit matrix-vector variant below and Week 2 Day 7's
// fused decode kernels (which compile this part alone, -DMATVEC_CORE_ONLY).
// A block first copies x (times a norm weight, if given) into shared memory
// as float, transposed by 16-byte slices of W: a slice is 8 bf16 or 32
// 4-bit weights, and quad q (4 floats) of slice j lands at xs4[q·NS + j],
// NS the slices a row, so that the 32 lanes of a warp, which load slices
// j … j + 31 of a row, read 512 consecutive bytes of shared memory, free of
// bank conflicts. For 4-bit the quads are pre-scaled by 16^-p (see nibp)
// and xsum[j] holds the slice's plain sum: a slice lies in one group, so
//   Σ_k x_k (q_k s + b) = s · Σ_k x_k q_k + b · xsum,
// and the scale and bias are loaded and applied once a slice.
// Each warp takes MV_P rows; wk warps of a block (1, 2, 4 or 8) may share
// a set of rows, each taking every wk-th slice, and add their sums in
// shared memory.
#ifndef MV_P  // rows a set (benchmark builds: 8)
#define MV_P 4
#endif
#ifndef MV_U
#define MV_U 2  // slices a row a lane loads before using the first
#endif

// Bytes of shared memory the staged x takes for K columns.
// bf16: 4·K; 4-bit: 4·K + 4·K/32.

// Stages x[0:K] (times ln[0:K] when ln is not null) into xs and returns
// Σ x² over K (before ln) to every thread. Each thread takes whole slices,
// its float4 loads issued together (a loop over single elements waits for
// one load at a time, which on a long x costs more than the product).
// blockDim.x must be a multiple of 32; K a multiple of 8 (bf16) or 32.
// The sum of v over the block, to every thread (it synchronizes).
__device__ __forceinline__ float mv_block_sum(float v) {
    __shared__ float mv_part[32];
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) mv_part[threadIdx.x / 32] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < (int)(blockDim.x / 32); i++) t += mv_part[i];
    __syncthreads();  // mv_part may be reused
    return t;
}

template <bool Q4>
__device__ __forceinline__ float mv_stage(float* xs, const float* __restrict__ x, const float* __restrict__ ln, int K) {
    constexpr int W = Q4 ? 32 : 8, Q = W / 4;  // weights and quads a slice
    const int NS = K / W;
    float4* xs4 = (float4*)xs;
    float ss = 0.0f;
#pragma unroll 2
    for (int j = threadIdx.x; j < NS; j += blockDim.x) {
        const float4* src = (const float4*)x + (size_t)j * Q;
        float4 v[Q];
#pragma unroll
        for (int q = 0; q < Q; q++) v[q] = __ldg(src + q);
        if (ln != nullptr) {
            const float4* lw = (const float4*)ln + (size_t)j * Q;
#pragma unroll
            for (int q = 0; q < Q; q++) {
                const float4 l = __ldg(lw + q);
                ss = fmaf(v[q].x, v[q].x, fmaf(v[q].y, v[q].y, fmaf(v[q].z, v[q].z, fmaf(v[q].w, v[q].w, ss))));
                v[q].x *= l.x; v[q].y *= l.y; v[q].z *= l.z; v[q].w *= l.w;
            }
        } else {
#pragma unroll
            for (int q = 0; q < Q; q++)
                ss = fmaf(v[q].x, v[q].x, fmaf(v[q].y, v[q].y, fmaf(v[q].z, v[q].z, fmaf(v[q].w, v[q].w, ss))));
        }
        if (Q4) {
            // quad q holds nibbles 4(q % 2) … 4(q % 2) + 3 of a word: the
            // scales of q4_word, 16^-p with p = 0, 1, 2, 3 and 4, 2, 3, 4
            float sum = 0.0f;
#pragma unroll
            for (int q = 0; q < Q; q++) {
                sum += (v[q].x + v[q].y) + (v[q].z + v[q].w);
                const float4 c = (q & 1) ? make_float4(1.52587890625e-05f, 0.00390625f, 0.000244140625f, 1.52587890625e-05f)
                                         : make_float4(1.0f, 0.0625f, 0.00390625f, 0.000244140625f);
                xs4[q * NS + j] = make_float4(v[q].x * c.x, v[q].y * c.y, v[q].z * c.z, v[q].w * c.w);
            }
            xs[K + j] = sum;
        } else {
#pragma unroll
            for (int q = 0; q < Q; q++) xs4[q * NS + j] = v[q];
        }
    }
    return mv_block_sum(ss);
}

// One warp's share of MV_P dot products: rows rows[0..MV_P) of W against
// the staged x, slices first, first + stride, …; acc gets the sums.
template <bool Q4>
__device__ __forceinline__ void mv_dot(float (&acc)[MV_P], const void* __restrict__ w,
                                       const unsigned short* __restrict__ scales,
                                       const unsigned short* __restrict__ biases, const int (&rows)[MV_P],
                                       const float* xs, int K, int group, int first, int stride) {
    const int NS = Q4 ? K / 32 : K / 8;
    const float4* xs4 = (const float4*)xs;
    const uint4* wr[MV_P];
#pragma unroll
    for (int p = 0; p < MV_P; p++) {
        acc[p] = 0.0f;
        wr[p] = (const uint4*)w + (size_t)rows[p] * NS;
    }
    const int G = Q4 ? K / group : 1, per = Q4 ? group / 32 : 1;
    for (int j0 = first; j0 < NS; j0 += stride * MV_U) {
        uint4 v[MV_U][MV_P];
        float s[MV_U][MV_P], b[MV_U][MV_P];
#pragma unroll
        for (int u = 0; u < MV_U; u++) {
            const int j = j0 + u * stride;
#pragma unroll
            for (int p = 0; p < MV_P; p++) {
                v[u][p] = j < NS ? __ldcs(wr[p] + j) : make_uint4(0, 0, 0, 0);  // read once
                if (Q4) {
                    size_t g = (size_t)rows[p] * G + (j < NS ? j : 0) / per;
                    s[u][p] = __uint_as_float(((unsigned int)__ldg(scales + g)) << 16);
                    b[u][p] = __uint_as_float(((unsigned int)__ldg(biases + g)) << 16);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < MV_U; u++) {
            const int j = j0 + u * stride;
            if (j >= NS) break;
            if (Q4) {
                float xq[8][4];
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    float4 t = xs4[q * NS + j];
                    xq[q][0] = t.x; xq[q][1] = t.y; xq[q][2] = t.z; xq[q][3] = t.w;
                }
                const float sx = xs[K + j];
#pragma unroll
                for (int p = 0; p < MV_P; p++) {
                    float qx = q4_word(v[u][p].x, xq[0], 0.0f);
                    qx = q4_word(v[u][p].y, xq[2], qx);
                    qx = q4_word(v[u][p].z, xq[4], qx);
                    qx = q4_word(v[u][p].w, xq[6], qx);
                    acc[p] = fmaf(s[u][p], qx, fmaf(b[u][p], sx, acc[p]));
                }
            } else {
                const float4 a = xs4[j], c = xs4[NS + j];
#pragma unroll
                for (int p = 0; p < MV_P; p++) {
                    const uint4 vv = v[u][p];
                    acc[p] += a.x * bf16_lo(vv.x) + a.y * bf16_hi(vv.x) + a.z * bf16_lo(vv.y) + a.w * bf16_hi(vv.y) +
                              c.x * bf16_lo(vv.z) + c.y * bf16_hi(vv.z) + c.z * bf16_lo(vv.w) + c.w * bf16_hi(vv.w);
                }
            }
        }
    }
}

// Adds the MV_P sums of the wk warps that share a set of rows: every lane of
// the set's first warp (part 0) gets the totals in tot. Called by the whole
// block (it synchronizes).
__device__ __forceinline__ void mv_reduce(float (&tot)[MV_P], const float (&acc)[MV_P], int wk) {
    __shared__ float mv_red[32][MV_P];
    const int warp = threadIdx.x / 32;
    if (wk == 1) {  // a warp has whole rows: no need to wait for the others
#pragma unroll
        for (int p = 0; p < MV_P; p++) tot[p] = warp_sum(acc[p]);
        return;
    }
#pragma unroll
    for (int p = 0; p < MV_P; p++) {
        float t = warp_sum(acc[p]);
        if ((threadIdx.x & 31) == 0) mv_red[warp][p] = t;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < MV_P; p++) {
        float t = 0.0f;
        if (warp % wk == 0)
            for (int i = 0; i < wk; i++) t += mv_red[warp + i][p];
        tot[p] = t;
    }
    __syncthreads();  // mv_red is reused by the next set
}

// ---- The matrix-vector core on x in int8 parts (4-bit W only). ----
//
// The float core above spends about three instructions a weight and reads
// 4 bytes of x from shared memory for every weight. Here each block first
// writes x as integers with one scale per slice of 32: d = max|x|/127,
// q1 = round(x/d), then the remainder in a second int8 part on a 254 times
// finer scale, q2 = round((x - d·q1)·254/d), and the remainder of that in
// a third, so that x = d·(q1 + q2/254 + q3/254²) to within d/(2·254²),
// 6·10⁻⁸ of the slice's largest |x|: float32's own precision. The codes
// meet x through __dp4a, four byte products summed in one instruction: a
// word of 8 codes splits into its even and odd nibbles with one mask each
// (w & 0x0F0F0F0F, (w >> 4) & 0x0F0F0F0F), bytes that pair with x's bytes
// stored in that order, so a slice of 32 weights takes 4 words × (3 logic
// operations + 2 dp4a a part) and a few float operations: about 1.3
// instructions a weight with three parts, against three. Per slice, with
// s, b its group's scale and bias and xq = q1 + q2/254 + q3/254²:
//   Σ_k x_k (q_k s + b) ≈ s · d · Σ_k xq_k q_k + b · d · Σ_k xq_k,
// the bias term on the sum of the rounded x, so that the result is the
// exact product with x rounded. With one part (MQ_LEVELS 1, the way
// llama.cpp's q8_1 rounds x) the error is about 0.5% of the result on
// normal x, and 0.08 in a small model's log-probs; with two, 2·10⁻⁵; with
// three, below the float32 tolerance. Where every block stages x the
// third part costs no measurable time (BenchmarkW2D4GemvVariants): the
// staging and the memory bound the product, not its instructions. On x
// rounded ahead it does: 11% of the 7B gate/up product, 6% of the 0.5B
// head's (BenchmarkW2D4RoundedParts). Week 2 Day 7's fused step, whose
// x is rounded once by the kernel that writes it, runs 6% faster on two
// parts and takes two.
//
// Shared memory, MQ_LEVELS·K + 8·K/32 bytes: NS = K/32 slices; for each
// part, the first 16 bytes of each slice's codes (pairing with words 0
// and 1 of W's slice), then the last 16; then (d, d·Σxq) per slice: a
// warp's 32 lanes read 512 consecutive bytes, free of bank conflicts.
// Byte i of x's word t pairs with nibble 2i (first word) or 2i + 1 (second)
// of W's word t.
#ifndef MQ_U
#define MQ_U 2  // slices a row a lane loads before using the first
#endif
#ifndef MQ_LEVELS
#define MQ_LEVELS 3  // int8 parts of x
#endif
#ifndef MQ_ANAT  // the benchmark's anatomy builds (wrong results), bits: 1 no arithmetic, 2 x not staged
#define MQ_ANAT 0
#endif

// mq_stage stages x[0:K] (times ln[0:K] when ln is not null) into xs as
// above and returns Σ x² over K (before ln) to every thread, K a multiple
// of 32; mq_stage_slice does the work of one slice j of the NS, adding its
// Σ x² to ss when SS.
//
// Every block stages all of x, so this is paid once per block and kernel,
// before its products can start: a thread takes a slice of 32 values at a
// time, and the rounding costs no conversion instruction (those issue at
// a quarter of the rate of an addition). For |v| < 2²², v + 1.5·2²³ in
// float32 is that number plus v rounded to the nearest integer, held in
// its low mantissa bits: (v + M) - M is the rounded value, and the bits'
// low byte its int8 code, which byte permutes pack four to a word (|v| <=
// 127 here: v is x/d on the first part, and each remainder is within half
// a step of the part before, 254 times finer). An earlier version, which
// converted, clamped and converted back each value, made Week 2 Day 7's
// two-layer 7B step on 4-bit weights 250.1 µs against 245.6.
//
// SS false skips Σ x² (a product with no norm after it has no use for it)
// and returns 0 after a barrier. A part's codes are summed from the packed
// words by __dp4a with 0x01010101, 8 instructions for 32 additions: the
// sum of whole numbers below 2^12, the same in any order.
template <bool SS>
__device__ __forceinline__ void mq_stage_slice(unsigned char* xs, const float* __restrict__ x,
                                               const float* __restrict__ ln, int NS, int j, float& ss) {
    constexpr float M = 12582912.0f;  // 1.5·2^23
    uint4* xp = (uint4*)xs;
    float2* xd = (float2*)(xp + 2 * MQ_LEVELS * NS);
    const float4* src = (const float4*)x + (size_t)j * 8;
    float v[32];
#pragma unroll
    for (int q = 0; q < 8; q++) {
        const float4 t = __ldg(src + q);
        v[4 * q] = t.x; v[4 * q + 1] = t.y; v[4 * q + 2] = t.z; v[4 * q + 3] = t.w;
    }
    if (SS) {
#pragma unroll
        for (int e = 0; e < 32; e++) ss = fmaf(v[e], v[e], ss);
    }
    if (ln != nullptr) {
        const float4* lw = (const float4*)ln + (size_t)j * 8;
#pragma unroll
        for (int q = 0; q < 8; q++) {
            const float4 l = __ldg(lw + q);
            v[4 * q] *= l.x; v[4 * q + 1] *= l.y; v[4 * q + 2] *= l.z; v[4 * q + 3] *= l.w;
        }
    }
    float amax = 0.0f;
#pragma unroll
    for (int e = 0; e < 32; e++) amax = fmaxf(amax, fabsf(v[e]));
    const float d = amax / 127.0f;
    float step = d, inv = amax > 0.0f ? 127.0f / amax : 0.0f, sum = 0.0f, unit = 1.0f;
#pragma unroll
    for (int l = 0; l < MQ_LEVELS; l++) {  // part l in units of step = d/254^l
        unsigned int b[32];
#pragma unroll
        for (int e = 0; e < 32; e++) {
            const float t = fmaf(v[e], inv, M);
            b[e] = __float_as_uint(t);
            if (l + 1 < MQ_LEVELS) v[e] = fmaf(-step, t - M, v[e]);  // the remainder, within step/2
        }
        // word 2t: the codes of values 8t, 8t+2, 8t+4, 8t+6; word 2t+1 the odd ones
        unsigned int p[8];
        int qi = 0;
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const int e = 8 * (t / 2) + t % 2;
            p[t] = __byte_perm(__byte_perm(b[e], b[e + 2], 0x0040), __byte_perm(b[e + 4], b[e + 6], 0x0040), 0x5410);
            qi = __dp4a((int)p[t], 0x01010101, qi);
        }
        const float qs = (float)qi;
        xp[2 * l * NS + j] = make_uint4(p[0], p[1], p[2], p[3]);
        xp[(2 * l + 1) * NS + j] = make_uint4(p[4], p[5], p[6], p[7]);
        sum = fmaf(qs, unit, sum);
        step *= 1.0f / 254.0f;
        inv *= 254.0f;
        unit *= 1.0f / 254.0f;
    }
    xd[j] = make_float2(d, d * sum);
}

template <bool SS = true>
__device__ __forceinline__ float mq_stage(unsigned char* xs, const float* __restrict__ x,
                                          const float* __restrict__ ln, int K) {
    const int NS = K / 32;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < NS && !(MQ_ANAT & 2); j += blockDim.x) mq_stage_slice<SS>(xs, x, ln, NS, j, ss);
    if (!SS) {
        __syncthreads();  // x staged before any thread reads it
        return 0.0f;
    }
    return mv_block_sum(ss);
}

// mq_stage's work for one slice, done by a warp for a layout in device
// memory that many blocks then read (Week 2 Day 7's fused step rounds x
// once, where it is written, instead of in every block that reads it):
// lane i holds element 32·j + i of x in v, and l is its weight of the
// norm (1 for none). Writes slice j of the NS slices at xs, in mq_stage's
// layout and with its rounding, code for code, and when ss is not null
// the sum of the squares of v (before l) at ss[j].
__device__ __forceinline__ void mq_put(unsigned char* __restrict__ xs, float* __restrict__ ss, int NS, int j,
                                       float v, float l) {
    constexpr float M = 12582912.0f;  // 1.5·2^23
    const int lane = threadIdx.x & 31;
    if (ss != nullptr) {
        const float s = warp_sum(v * v);
        if (lane == 0) ss[j] = s;
    }
    v *= l;
    float amax = fabsf(v);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float d = amax / 127.0f;
    float step = d, inv = amax > 0.0f ? 127.0f / amax : 0.0f, sum = 0.0f, unit = 1.0f;
    // element i is byte (i % 8) / 2 of word 2·((i % 16) / 8) + i % 2 of
    // the first (i < 16) or second 16 bytes of the slice's part
    const int i = lane % 16, at = (2 * (i / 8) + i % 2) * 4 + (i % 8) / 2;
    unsigned char* dst = xs + ((size_t)(lane / 16) * NS + j) * 16 + at;
#pragma unroll
    for (int p = 0; p < MQ_LEVELS; p++) {
        const float t = fmaf(v, inv, M), q = t - M;
        dst[(size_t)2 * p * NS * 16] = (unsigned char)(__float_as_uint(t) & 0xffu);
        v = fmaf(-step, q, v);
        sum = fmaf(warp_sum(q), unit, sum);  // whole numbers: the sum is exact in any order
        step *= 1.0f / 254.0f;
        inv *= 254.0f;
        unit *= 1.0f / 254.0f;
    }
    if (lane == 0) ((float2*)(xs + (size_t)2 * MQ_LEVELS * NS * 16))[j] = make_float2(d, d * sum);
}

// x already rounded (mq_stage's layout at src, in device memory) copied
// whole into dst in shared memory by the block, 16 bytes a thread at a
// time: the layout's size rounded up to 16 bytes, which the buffers at src
// and dst must hold. The caller waits at a barrier before reading dst.
__device__ __forceinline__ void mq_copy_rounded(float4* dst, const void* __restrict__ src, int K) {
    const int n16 = (MQ_LEVELS * K + 8 * (K / 32) + 15) / 16;
    for (int i = threadIdx.x; i < n16; i += blockDim.x) dst[i] = __ldg((const float4*)src + i);
}

// Slice j of x already rounded (mq_stage's layout at src) copied into the
// same place at dst: its codes in each part, then its scale and sum.
__device__ __forceinline__ void mq_copy_slice(unsigned char* dst, const unsigned char* __restrict__ src, int NS, int j) {
#pragma unroll
    for (int h = 0; h < 2 * MQ_LEVELS; h++)
        ((uint4*)dst)[h * NS + j] = __ldg((const uint4*)src + h * NS + j);
    ((float2*)((uint4*)dst + 2 * MQ_LEVELS * NS))[j] = __ldg((const float2*)((const uint4*)src + 2 * MQ_LEVELS * NS) + j);
}

// (float)t for |t| < 2^22 in two full-rate additions, where the conversion
// instruction issues at a quarter of their rate: t's bits added to those
// of 1.5·2^23 make that number plus t (see mq_stage).
__device__ __forceinline__ float mq_float(int t) { return __int_as_float(t + 0x4B400000) - 12582912.0f; }

// One round of a warp's loads for mq_dot: U 16-byte slices of each of its
// MV_P rows (slices j0, j0 + stride, …, up to the row's end, where mq_mul
// stops too) and their groups' scales and biases.
template <int U>
struct MqRound {
    uint4 v[U][MV_P];
    unsigned short s[U][MV_P], b[U][MV_P];
};

// Where a warp's MV_P rows start, counted once a set instead of once a
// round: in 16-byte slices of W (row·NS) and in groups (row·G), both below
// 2^32 for any W of less than 64 GB. A round's addresses are then one
// addition and one wide multiply-add each; the earlier build recomputed
// every row's 64-bit addresses and divided the slice by the group's slices
// at every round, some 150 of the 490 instructions of a round of 4 rows.
struct MqRows {
    unsigned int w[MV_P], g[MV_P];
};

__device__ __forceinline__ void mq_rows(MqRows& o, const int (&rows)[MV_P], int NS, int G) {
#pragma unroll
    for (int p = 0; p < MV_P; p++) {
        o.w[p] = (unsigned int)rows[p] * (unsigned int)NS;
        o.g[p] = (unsigned int)rows[p] * (unsigned int)G;
    }
}

#ifndef MQ_LDW  // how W is loaded (benchmark builds): 0 evict-first (__ldcs), 1 __ldg, 2 no L1 and 256-byte L2 fetches, 3 plain
#define MQ_LDW 0
#endif
__device__ __forceinline__ uint4 mq_ldw(const uint4* p) {
#if MQ_LDW == 0
    return __ldcs(p);
#elif MQ_LDW == 1
    return __ldg(p);
#elif MQ_LDW == 2
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
#else
    return *p;
#endif
}

// lg: log2 of the slices a group spans (group / 32, a power of two).
template <int U>
__device__ __forceinline__ void mq_load(MqRound<U>& r, const void* __restrict__ w,
                                        const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases, const MqRows& o, int NS,
                                        int lg, int j0, int stride) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int j = j0 + u * stride;
        if (j >= NS) break;  // mq_mul stops at the same slice: nothing past it is read
        const unsigned int gj = (unsigned int)j >> lg;
#pragma unroll
        for (int p = 0; p < MV_P; p++) {
            r.v[u][p] = mq_ldw((const uint4*)w + (o.w[p] + (unsigned int)j));  // read once
            r.s[u][p] = __ldg(scales + (o.g[p] + gj));
            r.b[u][p] = __ldg(biases + (o.g[p] + gj));
        }
    }
}

// Adds a round's products with the staged x (planes xp, per-slice (d, d·Σxq)
// xd) to acc.
template <int U>
__device__ __forceinline__ void mq_mul(float (&acc)[MV_P], const MqRound<U>& r, const uint4* xp, const float2* xd,
                                       int NS, int j0, int stride) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int j = j0 + u * stride;
        if (j >= NS) break;
        uint4 xq[MQ_LEVELS][2];
#pragma unroll
        for (int l = 0; l < MQ_LEVELS; l++) {
            xq[l][0] = xp[2 * l * NS + j];
            xq[l][1] = xp[(2 * l + 1) * NS + j];
        }
        const float2 dd = xd[j];
#pragma unroll
        for (int p = 0; p < MV_P; p++) {
            if (MQ_ANAT & 1) {  // the loads kept, the arithmetic left out
                acc[p] += __uint_as_float((r.v[u][p].x ^ r.v[u][p].y ^ r.v[u][p].z ^ r.v[u][p].w ^ r.s[u][p] ^
                                           r.b[u][p]) & 0x007fffffu);
                continue;
            }
            const unsigned int wv[4] = {r.v[u][p].x, r.v[u][p].y, r.v[u][p].z, r.v[u][p].w};
            int t[MQ_LEVELS];
#pragma unroll
            for (int l = 0; l < MQ_LEVELS; l++) t[l] = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int lo = (int)(wv[k] & 0x0F0F0F0Fu), hi = (int)((wv[k] >> 4) & 0x0F0F0F0Fu);
#pragma unroll
                for (int l = 0; l < MQ_LEVELS; l++) {
                    const uint4& a = xq[l][k / 2];
                    t[l] = __dp4a(hi, (int)(k % 2 ? a.w : a.y), __dp4a(lo, (int)(k % 2 ? a.z : a.x), t[l]));
                }
            }
            float sx = mq_float(t[MQ_LEVELS - 1]);  // q1 + q2/254 + …, the finest first
#pragma unroll
            for (int l = MQ_LEVELS - 2; l >= 0; l--) sx = fmaf(sx, 1.0f / 254.0f, mq_float(t[l]));
            const float sf = __uint_as_float((unsigned int)r.s[u][p] << 16);
            const float bf = __uint_as_float((unsigned int)r.b[u][p] << 16);
            acc[p] = fmaf(sf, dd.x * sx, fmaf(bf, dd.y, acc[p]));
        }
    }
}

// mv_dot on the integer x staged by mq_stage: a round of loads, then its
// products, then the next round.
__device__ __forceinline__ void mq_dot(float (&acc)[MV_P], const void* __restrict__ w,
                                       const unsigned short* __restrict__ scales,
                                       const unsigned short* __restrict__ biases, const int (&rows)[MV_P],
                                       const unsigned char* xs, int K, int group, int first, int stride) {
    const int NS = K / 32;
    const uint4* xp = (const uint4*)xs;
    const float2* xd = (const float2*)(xp + 2 * MQ_LEVELS * NS);
    MqRows o;
    mq_rows(o, rows, NS, K / group);
    const int lg = 31 - __clz(group / 32);
#pragma unroll
    for (int p = 0; p < MV_P; p++) acc[p] = 0.0f;
    for (int j0 = first; j0 < NS; j0 += stride * MQ_U) {
        MqRound<MQ_U> r;
        mq_load(r, w, scales, biases, o, NS, lg, j0, stride);
        mq_mul(acc, r, xp, xd, NS, j0, stride);
    }
}

// The core by weight format F: 0 bf16, 1 4-bit on float x, 2 4-bit on x in
// int8 parts.
// SS false: the caller does not need Σ x² (mq_stage's SS; the float
// staging computes it all the same).
template <int F, bool SS = true>
__device__ __forceinline__ float mv_stage_f(float* xs, const float* __restrict__ x, const float* __restrict__ ln, int K) {
    if (F == 2) return mq_stage<SS>((unsigned char*)xs, x, ln, K);
    return mv_stage<F == 1>(xs, x, ln, K);
}

template <int F>
__device__ __forceinline__ void mv_dot_f(float (&acc)[MV_P], const void* __restrict__ w,
                                         const unsigned short* __restrict__ scales,
                                         const unsigned short* __restrict__ biases, const int (&rows)[MV_P],
                                         const float* xs, int K, int group, int first, int stride) {
    if (F == 2)
        mq_dot(acc, w, scales, biases, rows, (const unsigned char*)xs, K, group, first, stride);
    else
        mv_dot<F == 1>(acc, w, scales, biases, rows, xs, K, group, first, stride);
}

// Programmatic dependent launch (compute capability 9.0 and later): a
// kernel launched with Overlap inside a captured graph may start while the
// launch ahead of it drains. mv_after_previous lets the launch behind this
// one be scheduled at once, then waits until the one ahead has finished
// and its writes are visible. Before it a kernel may read only what no
// kernel writes (the weights); launched without Overlap, it returns at once.
__device__ __forceinline__ void mv_after_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// l2_prefetch asks for bytes [from, to) of p to be brought into L2, one
// bulk request (Hopper's cp.async.bulk.prefetch), the range's addresses
// rounded inward to the 16-byte boundaries it needs. A small product's
// blocks are all on the GPU at once, so with it before mv_after_previous
// they can ask for all their weights while the launch ahead drains, not
// only for the round that their registers hold.
__device__ __forceinline__ void l2_prefetch(const void* p, size_t from, size_t to) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const size_t a = ((size_t)p + from + 15) & ~(size_t)15, e = ((size_t)p + to) & ~(size_t)15;
    if (e > a) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a), "r"((unsigned)(e - a)) : "memory");
#endif
}

// ---- A block's sets of rows, the next weights in flight. ----
//
// mv_sets runs the sets of rows a block takes (set = blockIdx.x,
// blockIdx.x + gridDim.x, … below nsets; rows_of(set, rows) gives a warp's
// MV_P rows of a set): start(rows) once, with the warp's rows of its first
// set (it waits for the kernel ahead and stages x), then for each set the
// dot products, their reduction over the wk warps that share the set
// (mv_reduce), and done(set, tot), called by every thread (tot holds the
// sums in the warps with warp % wk == 0).
//
// On x in int8 parts (F = 2) the loop is pipelined (MQ_PIPE 1): mq_dot
// asks for a round of weights, waits for it, multiplies and only then
// asks for the next, so each warp's requests stop while it multiplies,
// reduces and writes, and most warps do that at the same moments, since
// they all start once x is staged. Here a warp asks for its next round,
// the next set's first round at the end of a set, before it multiplies
// the one that has arrived, and for its first round before start, while
// x is staged and the kernel ahead drains. It costs one more round of
// registers (MQP_U slices of MV_P rows: 24 registers a thread for 1).
#ifndef MQ_PIPE
#define MQ_PIPE 1
#endif
#ifndef MQP_U
#define MQP_U 1  // slices a row a lane loads in a pipelined round
#endif
#ifndef MQ_NAP
#define MQ_NAP 100  // ns a warp waiting for x sleeps between looks (matmul_q4_gemv_q8_u2p)
#endif

template <int F>
__device__ __forceinline__ constexpr bool mv_pipelined() {
    return F == 2 && MQ_PIPE;
}

// The rows of set for a warp when sets are MV_P·per consecutive rows of
// W, per = (warps a block)/wk sets a block (rows past N repeat the last:
// read, not written).
__device__ __forceinline__ void mv_rows(int set, int per, int wk, int N, int (&rows)[MV_P]) {
    const int n0 = (set * per + threadIdx.x / 32 / wk) * MV_P;
#pragma unroll
    for (int p = 0; p < MV_P; p++) rows[p] = min(n0 + p, N - 1);
}

// tot[lane] for lanes below MV_P (a lane writes one row's sum).
__device__ __forceinline__ float mv_lane_sum(const float (&tot)[MV_P], int lane) {
    float t = tot[0];
#pragma unroll
    for (int p = 1; p < MV_P; p++)
        if (lane == p) t = tot[p];
    return t;
}

// mv_sets_u is mv_sets with U slices a row a pipelined round (MQP_U in
// mv_sets).
template <int F, int U, class Rows, class Start, class Done>
__device__ __forceinline__ void mv_sets_u(const void* __restrict__ w, const unsigned short* __restrict__ scales,
                                          const unsigned short* __restrict__ biases, const float* xs, int K,
                                          int group, int wk, int nsets, Rows rows_of, Start start, Done done,
                                          const volatile int* staged = nullptr) {
    const int part = threadIdx.x / 32 % wk;
    const int first = part * 32 + threadIdx.x % 32, stride = 32 * wk;
    if constexpr (!mv_pipelined<F>()) {
        {
            int rows[MV_P];
            rows_of(min((int)blockIdx.x, nsets - 1), rows);
            start(rows);
        }
        for (int set = blockIdx.x; set < nsets; set += gridDim.x) {
            int rows[MV_P];
            float acc[MV_P], tot[MV_P];
            rows_of(set, rows);
            mv_dot_f<F>(acc, w, scales, biases, rows, xs, K, group, first, stride);
            mv_reduce(tot, acc, wk);
            done(set, tot);
        }
    } else {
        int rows[MV_P];
        float acc[MV_P], tot[MV_P];
        rows_of(min((int)blockIdx.x, nsets - 1), rows);
        const int NS = K / 32, G = K / group, lg = 31 - __clz(group / 32), step = stride * U;
        // rounds a set takes this warp: its lane 0's slices part·32, + step, … below NS
        const int R = part * 32 < NS ? (NS - part * 32 + step - 1) / step : 0;
        const uint4* xp = (const uint4*)xs;
        const float2* xd = (const float2*)(xp + 2 * MQ_LEVELS * NS);
        MqRound<U> cur, nxt;
        MqRows o, no;
        mq_rows(o, rows, NS, G);
        if (R > 0) mq_load(cur, w, scales, biases, o, NS, lg, first, stride);
        start(rows);
        int seen = 0;  // with staged: the rounds of x seen staged (below)
        for (int set = blockIdx.x; set < nsets; set += gridDim.x) {
            const int next = set + (int)gridDim.x;
            {
                int nrows[MV_P];
                rows_of(min(next, nsets - 1), nrows);
                mq_rows(no, nrows, NS, G);
            }
#pragma unroll
            for (int p = 0; p < MV_P; p++) acc[p] = 0.0f;
            for (int r = 0; r < R; r++) {
                if (r + 1 < R)
                    mq_load(nxt, w, scales, biases, o, NS, lg, first + (r + 1) * step, stride);
                else if (next < nsets)
                    mq_load(nxt, w, scales, biases, no, NS, lg, first, stride);
                if (staged != nullptr && r >= seen) {
                    // x arrives a round's slices (step) at a time, counted
                    // in *staged by the producer warps (matmul_q4_gemv_q8_u2p);
                    // the waiting warps sleep between looks, so as not to
                    // take the producers' issue slots
                    while ((seen = *staged) <= r) __nanosleep(MQ_NAP);
                    __threadfence_block();
                }
                mq_mul(acc, cur, xp, xd, NS, first + r * step, stride);
                cur = nxt;
            }
            mv_reduce(tot, acc, wk);
            done(set, tot);
            o = no;
        }
    }
}

template <int F, class Rows, class Start, class Done>
__device__ __forceinline__ void mv_sets(const void* __restrict__ w, const unsigned short* __restrict__ scales,
                                        const unsigned short* __restrict__ biases, const float* xs, int K,
                                        int group, int wk, int nsets, Rows rows_of, Start start, Done done) {
    mv_sets_u<F, MQP_U>(w, scales, biases, xs, K, group, wk, nsets, rows_of, start, done);
}

#ifndef MATVEC_CORE_ONLY
// Rung 3's 4-bit matrix-vector products on the staged x, float (F = 1,
// matmul_q4_gemv_x) or in int8 parts (F = 2, matmul_q4_gemv_q8): MV_P rows a warp,
// wk warps a set of rows, sets taken by the blocks in turn (grid-stride).
// Dynamic shared memory: 4·K + 4·K/32 bytes (float), MQ_LEVELS·K + 8·K/32
// (int8 parts). U: slices a row a pipelined round (int8 parts).
//
// PROD > 0 (x in int8 parts, wk 1): the last PROD warps of the block stage
// x, a round's slices at a time, and count the rounds staged in a shared
// counter, while the other warps stream W from the start and wait for a
// round of x only when they reach it (matmul_q4_gemv_q8_u2p).
//
// RX (x in int8 parts): x comes already rounded, in mq_stage's layout in
// device memory (matmul_q8_round_x, or the kernel that wrote x), and no
// block rounds it: each block copies the codes into its shared memory
// (RX 2, matmul_q4_gemv_q8r), or the loop reads them where they are (RX 1,
// matmul_q4_gemv_q8rd).
template <int F, int U = MQP_U, int PROD = 0, int RX = 0>
__device__ __forceinline__ void q4_gemv_staged(float* __restrict__ y, const float* __restrict__ x,
                                               const unsigned int* __restrict__ w,
                                               const unsigned short* __restrict__ scales,
                                               const unsigned short* __restrict__ biases, int N, int K, int group,
                                               int wk, int pre) {
    static_assert(RX == 0 || F == 2, "x comes rounded only in int8 parts");
    static_assert(PROD == 0 || RX != 1, "producer warps copy x into shared memory (RX 2), or round it (RX 0)");
    extern __shared__ float4 mv_smem[];
    float* xsm = (float*)mv_smem;
    const float* xs = RX == 1 ? x : xsm;
    __shared__ volatile int staged;  // PROD: rounds of x staged
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, per = ((int)blockDim.x / 32 - PROD) / wk;
    const int sets = (N + MV_P * per - 1) / (MV_P * per);
    if (PROD > 0) {
        static_assert(PROD == 0 || F == 2, "producer warps stage x in int8 parts");
        if (threadIdx.x == 0) staged = 0;
        __syncthreads();
        if (warp >= per) {
            mv_after_previous();
            // wk 1: a round reads step slices; the producers stage as many
            // rounds at once as give each of them a slice
            const int NS = K / 32, step = 32 * U, pt = threadIdx.x - 32 * per;
            const int span = step * max(1, 32 * PROD / step);
            float ss = 0.0f;
            for (int c0 = 0; c0 < NS; c0 += span) {
                for (int j = c0 + pt; j < min(NS, c0 + span); j += 32 * PROD) {
                    if (RX == 2)
                        mq_copy_slice((unsigned char*)xsm, (const unsigned char*)x, NS, j);
                    else
                        mq_stage_slice<false>((unsigned char*)xsm, x, nullptr, NS, j, ss);
                }
                asm volatile("bar.sync 1, %0;" ::"n"(32 * PROD) : "memory");  // the producers' slices written
                if (pt == 0) {
                    __threadfence_block();
                    staged = (min(NS, c0 + span) + step - 1) / step;
                }
            }
            return;
        }
    }
    mv_sets_u<F, U>(
            w, scales, biases, xs, K, group, wk, sets,
            [&](int set, int (&rows)[MV_P]) { mv_rows(set, per, wk, N, rows); },
            [&](const int (&)[MV_P]) {
                if (pre && threadIdx.x == 0)  // all of the block's sets into L2
                    for (int set = blockIdx.x; set < sets; set += gridDim.x) {
                        const size_t r0 = (size_t)set * per * MV_P, r1 = min(r0 + per * MV_P, (size_t)N);
                        l2_prefetch(w, r0 * K / 2, r1 * K / 2);
                        l2_prefetch(scales, r0 * (K / group) * 2, r1 * (K / group) * 2);
                        l2_prefetch(biases, r0 * (K / group) * 2, r1 * (K / group) * 2);
                    }
                mv_after_previous();
                if (RX == 2 && PROD == 0) {
                    mq_copy_rounded(mv_smem, x, K);
                    __syncthreads();
                } else if (PROD == 0 && RX == 0) {
                    mv_stage_f<F, false>(xsm, x, nullptr, K);
                }
            },
            [&](int set, const float (&tot)[MV_P]) {
                const int n0 = (set * per + warp / wk) * MV_P;
                if (warp % wk == 0 && lane < MV_P && n0 + lane < N) y[n0 + lane] = mv_lane_sum(tot, lane);
            },
            PROD > 0 ? &staged : nullptr);
}

extern "C" __global__ void __launch_bounds__(256) matmul_q4_gemv_x(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk, int pre) {
    q4_gemv_staged<1>(y, x, w, scales, biases, N, K, group, wk, pre);
}

#ifndef MQ_MINB  // blocks per multiprocessor the registers must allow
#define MQ_MINB 2
#endif
extern "C" __global__ void __launch_bounds__(256, MQ_MINB) matmul_q4_gemv_q8(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk, int pre) {
    q4_gemv_staged<2>(y, x, w, scales, biases, N, K, group, wk, pre);
}

// matmul_q4_gemv_q8 with two slices of each row in a pipelined round, twice
// the bytes of W in flight a lane. The registers then allow one block a
// multiprocessor instead of two, so it pays where a warp's rows are long
// (N <= K: the q/o and down projections, 10-18% faster; the 7B gate/up,
// 3584 columns, 11%), and loses where rows too short to give every lane
// two slices keep two blocks busy (the 0.5B gate/up and output head).
extern "C" __global__ void __launch_bounds__(256, 1) matmul_q4_gemv_q8_u2(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk, int pre) {
    q4_gemv_staged<2, 2>(y, x, w, scales, biases, N, K, group, wk, pre);
}

// matmul_q4_gemv_q8 and matmul_q4_gemv_q8_u2 on x already rounded into
// int8 parts (RX in q4_gemv_staged): xq holds mq_stage's layout in device
// memory, written once by matmul_q8_round_x below or by the kernel that
// computes x (Week 2 Day 7's step rounds x where it writes it). No block
// rounds x: after the wait for the launch ahead each copies the codes into
// its shared memory (q8r), one trip to L2, or its loop reads them from
// device memory, from L1 once a warp of the multiprocessor has asked for
// them (q8rd). The sums are the staged kernels', bit for bit, with the
// same warps a set.
#define MQ_RX_KERNELS(name, minb, u, rx)                                                                       \
    extern "C" __global__ void __launch_bounds__(256, minb) name(                                              \
            float* __restrict__ y, const unsigned char* __restrict__ xq, const unsigned int* __restrict__ w,    \
            const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases, int N, int K, \
            int group, int wk, int pre) {                                                                      \
        q4_gemv_staged<2, u, 0, rx>(y, (const float*)xq, w, scales, biases, N, K, group, wk, pre);             \
    }
MQ_RX_KERNELS(matmul_q4_gemv_q8r, MQ_MINB, MQP_U, 2)
MQ_RX_KERNELS(matmul_q4_gemv_q8r_u2, 1, 2, 2)
MQ_RX_KERNELS(matmul_q4_gemv_q8rd, MQ_MINB, MQP_U, 1)
MQ_RX_KERNELS(matmul_q4_gemv_q8rd_u2, 1, 2, 1)
// Four slices of each row a round, for rows of 97 to 128 slices (the 7B
// gate/up projection's 112): a set is then one round instead of two of
// two, 256 bytes of W in flight a lane (V3Rounded, x copied).
MQ_RX_KERNELS(matmul_q4_gemv_q8r_u4, 1, 4, 2)

// x[0:K] rounded into xq in mq_stage's layout (mq_put, code for code the
// staging's rounding), a warp a slice of 32: the launch that gives
// matmul_q4_gemv_q8r its x where no kernel ahead writes it that way.
extern "C" __global__ void __launch_bounds__(256) matmul_q8_round_x(unsigned char* __restrict__ xq,
                                                                    const float* __restrict__ x, int K) {
    mv_after_previous();
    const int NS = K / 32, j = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (j < NS) mq_put(xq, nullptr, NS, j, x[(size_t)32 * j + threadIdx.x % 32], 1.0f);
}

// matmul_q4_gemv_q8_u2 with x staged by MQ_PROD warps of its own while the
// 8 others multiply (q4_gemv_staged's PROD): every block of the other
// kernels rounds all of x before its first product, with only its first
// round of W in flight, which on the 7B down projection's 18,944 columns
// held the memory back for about a quarter of the product's time
// (BenchmarkW2D4GemvVariants' anat_x_not_staged). Here the multiplying
// warps keep streaming W and wait for a round of x only when they reach
// it. wk must be 1: the producers leave before the sets' block-wide
// reductions.
#ifndef MQ_PROD
#define MQ_PROD 4
#endif

extern "C" __global__ void __launch_bounds__(256 + 32 * MQ_PROD, 1) matmul_q4_gemv_q8_u2p(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk, int pre) {
    q4_gemv_staged<2, 2, MQ_PROD>(y, x, w, scales, biases, N, K, group, wk, pre);
}

// matmul_q4_gemv_q8_u2p on x already rounded: the producer warps copy it
// into shared memory a span of slices at a time instead of rounding it,
// and the others start on W at once and wait for a span only when they
// reach it. On long rows one copy of all of x by the whole block, before
// any product, costs about as much as the producers' rounding saves.
extern "C" __global__ void __launch_bounds__(256 + 32 * MQ_PROD, 1) matmul_q4_gemv_q8r_u2p(
        float* __restrict__ y, const unsigned char* __restrict__ xq, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk, int pre) {
    q4_gemv_staged<2, 2, MQ_PROD, 2>(y, (const float*)xq, w, scales, biases, N, K, group, wk, pre);
}

// ---- Rung 3: matrix-vector products bound by reading W once. ----
//
// Each warp takes V3_WROWS consecutive rows of W and up to V3_ROWS rows of x
// (grid Y covers the rest of x). Each lane loads 16 bytes of W at a time (8
// bf16 or 32 4-bit weights), V3_UNROLL loads per row of W issued before the
// first is used, so that enough bytes are in flight to cover the latency of
// device memory; a slice of x, once loaded, serves every row of W the warp
// holds. The macros can be overridden at compile time (-D), which is how the
// benchmark compares variants.
#ifndef V3_ROWS
#define V3_ROWS 2
#endif
#ifndef V3_WROWS
#define V3_WROWS 4
#endif
#ifndef V3_UNROLL
#define V3_UNROLL 2
#endif
#ifndef V3_STREAM  // 1: load W with the evict-first hint (__ldcs)
#define V3_STREAM 1
#endif

// A round of rung 3's bf16 loads: V3_UNROLL 16-byte pieces of each of a
// warp's V3_WROWS rows from n0, at j0, j0 + stride, … (zeros past K8).
__device__ __forceinline__ void v3_load(uint4 (&v)[V3_WROWS][V3_UNROLL], const unsigned short* __restrict__ w,
                                        int n0, int N, int K8, int j0, int stride) {
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++) {
        const uint4* wr = (const uint4*)w + (size_t)min(n0 + q, N - 1) * K8;
#pragma unroll
        for (int u = 0; u < V3_UNROLL; u++) {
            int j = j0 + stride * u;
#if V3_STREAM
            v[q][u] = j < K8 ? __ldcs(wr + j) : make_uint4(0, 0, 0, 0);
#else
            v[q][u] = j < K8 ? wr[j] : make_uint4(0, 0, 0, 0);
#endif
        }
    }
}

// When W has few rows (the 7B down projection: 3584 rows of 37 KB), a
// warp per few rows leaves multiprocessors idle, so wk warps of a block
// (1, 2, 4 or 8) share one set of rows, each taking every wk-th 16-byte
// column slice, and add their sums through shared memory at the end: the
// block then covers V3_WROWS·8/wk rows.
extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v3(
        float* __restrict__ y, const float* __restrict__ x, const unsigned short* __restrict__ w,
        int M, int N, int K, int wk, int pre) {
    __shared__ float red[8][V3_WROWS][V3_ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int set = warp / wk, part = warp % wk;
    const int n0 = (blockIdx.x * (8 / wk) + set) * V3_WROWS;
    const int m0 = blockIdx.y * V3_ROWS;
    const int rows = min(V3_ROWS, M - m0);
    const int K8 = K / 8, stride = 32 * wk;
    float acc[V3_WROWS][V3_ROWS];
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++)
#pragma unroll
        for (int r = 0; r < V3_ROWS; r++) acc[q][r] = 0.0f;
    // The first round of W is requested before the wait for the launch
    // ahead (mv_after_previous): no kernel writes W, the one ahead may
    // write x.
    uint4 v[V3_WROWS][V3_UNROLL];
    int j0 = part * 32 + lane;
    if (n0 < N) v3_load(v, w, n0, N, K8, j0, stride);
    if (pre && blockIdx.y == 0 && threadIdx.x == 0) {  // all of the block's rows into L2
        const int nb = blockIdx.x * (8 / wk) * V3_WROWS, nr = min((8 / wk) * V3_WROWS, N - nb);
        if (nr > 0) l2_prefetch(w, (size_t)nb * K * 2, (size_t)(nb + nr) * K * 2);
    }
    mv_after_previous();
    if (n0 < N && j0 < K8) {
        for (;;) {
#pragma unroll
            for (int u = 0; u < V3_UNROLL; u++) {
                int j = j0 + stride * u;
                if (j >= K8) break;
#pragma unroll
                for (int r = 0; r < V3_ROWS; r++) {
                    if (r < rows) {
                        const float4* xr = (const float4*)(x + (size_t)(m0 + r) * K) + 2 * j;
                        float4 a = xr[0], b = xr[1];
#pragma unroll
                        for (int q = 0; q < V3_WROWS; q++) {
                            uint4 vv = v[q][u];
                            acc[q][r] += a.x * bf16_lo(vv.x) + a.y * bf16_hi(vv.x) + a.z * bf16_lo(vv.y) +
                                         a.w * bf16_hi(vv.y) + b.x * bf16_lo(vv.z) + b.y * bf16_hi(vv.z) +
                                         b.z * bf16_lo(vv.w) + b.w * bf16_hi(vv.w);
                        }
                    }
                }
            }
            j0 += stride * V3_UNROLL;
            if (j0 >= K8) break;
            v3_load(v, w, n0, N, K8, j0, stride);
        }
    }
    if (wk == 1) {  // a warp has whole rows: no need to wait for the others
#pragma unroll
        for (int q = 0; q < V3_WROWS; q++)
#pragma unroll
            for (int r = 0; r < V3_ROWS; r++) {
                float t = warp_sum(acc[q][r]);
                if (lane == 0 && r < rows && n0 + q < N) y[(size_t)(m0 + r) * N + n0 + q] = t;
            }
        return;
    }
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++)
#pragma unroll
        for (int r = 0; r < V3_ROWS; r++) {
            float s = warp_sum(acc[q][r]);
            if (lane == 0) red[warp][q][r] = s;
        }
    __syncthreads();
    if (part == 0 && n0 < N && lane < V3_WROWS * V3_ROWS) {
        int q = lane / V3_ROWS, r = lane % V3_ROWS;
        if (r < rows && n0 + q < N) {
            float s = 0.0f;
            for (int p = 0; p < wk; p++) s += red[warp + p][q][r];
            y[(size_t)(m0 + r) * N + n0 + q] = s;
        }
    }
}

// A nibble to float without the slow integer conversion: 0x4B000000 is
// 2^23, and OR-ing q into its mantissa gives 2^23 + q exactly.
__device__ __forceinline__ float nib(unsigned int w, int shift) {
    return __uint_as_float(0x4B000000u | ((w >> shift) & 15u)) - 8388608.0f;
}

// 4-bit: a lane's 16 bytes are 32 weights of one group (groups are 64 or
// 128 wide), so one scale s and bias b serve them all, and
//   sum_k x_k (q_k s + b) = s · sum_k x_k q_k + b · sum_k x_k:
// the scale and bias are applied once per 32 weights.
__device__ __forceinline__ void q4_dot8(unsigned int word, float4 a, float4 b, float& qx) {
    qx += a.x * nib(word, 0) + a.y * nib(word, 4) + a.z * nib(word, 8) + a.w * nib(word, 12) +
          b.x * nib(word, 16) + b.y * nib(word, 20) + b.z * nib(word, 24) + b.w * nib(word, 28);
}

extern "C" __global__ void __launch_bounds__(256) matmul_q4_v3(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int M, int N, int K, int group) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int n0 = (blockIdx.x * (blockDim.x / 32) + warp) * V3_WROWS;
    int m0 = blockIdx.y * V3_ROWS;
    if (n0 >= N) return;
    int rows = min(V3_ROWS, M - m0);
    int K32 = K / 32, per = group / 32, G = K / group;
    float acc[V3_WROWS][V3_ROWS];
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++)
#pragma unroll
        for (int r = 0; r < V3_ROWS; r++) acc[q][r] = 0.0f;
    for (int j0 = lane; j0 < K32; j0 += 32 * V3_UNROLL) {
        uint4 v[V3_WROWS][V3_UNROLL];
        float s[V3_WROWS][V3_UNROLL], b[V3_WROWS][V3_UNROLL];
#pragma unroll
        for (int q = 0; q < V3_WROWS; q++) {
            size_t n = (size_t)min(n0 + q, N - 1);
            const uint4* wr = (const uint4*)(w + n * (K / 8));
#pragma unroll
            for (int u = 0; u < V3_UNROLL; u++) {
                int j = j0 + 32 * u;
                if (j < K32) {
                    v[q][u] = wr[j];
                    s[q][u] = __uint_as_float(((unsigned int)scales[n * G + j / per]) << 16);
                    b[q][u] = __uint_as_float(((unsigned int)biases[n * G + j / per]) << 16);
                } else {
                    v[q][u] = make_uint4(0, 0, 0, 0);
                    s[q][u] = b[q][u] = 0.0f;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < V3_UNROLL; u++) {
            int j = j0 + 32 * u;
            if (j >= K32) break;
#pragma unroll
            for (int r = 0; r < V3_ROWS; r++) {
                if (r < rows) {
                    const float4* xr = (const float4*)(x + (size_t)(m0 + r) * K) + 8 * j;
                    float4 x0 = xr[0], x1 = xr[1], x2 = xr[2], x3 = xr[3], x4 = xr[4], x5 = xr[5], x6 = xr[6], x7 = xr[7];
                    float sx = ((x0.x + x0.y) + (x0.z + x0.w)) + ((x1.x + x1.y) + (x1.z + x1.w)) +
                               ((x2.x + x2.y) + (x2.z + x2.w)) + ((x3.x + x3.y) + (x3.z + x3.w)) +
                               ((x4.x + x4.y) + (x4.z + x4.w)) + ((x5.x + x5.y) + (x5.z + x5.w)) +
                               ((x6.x + x6.y) + (x6.z + x6.w)) + ((x7.x + x7.y) + (x7.z + x7.w));
#pragma unroll
                    for (int q = 0; q < V3_WROWS; q++) {
                        float qx = 0.0f;
                        q4_dot8(v[q][u].x, x0, x1, qx);
                        q4_dot8(v[q][u].y, x2, x3, qx);
                        q4_dot8(v[q][u].z, x4, x5, qx);
                        q4_dot8(v[q][u].w, x6, x7, qx);
                        acc[q][r] += s[q][u] * qx + b[q][u] * sx;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++) {
#pragma unroll
        for (int r = 0; r < V3_ROWS; r++) {
            if (r < rows) {
                float t = warp_sum(acc[q][r]);
                if (lane == 0 && n0 + q < N) y[(size_t)(m0 + r) * N + n0 + q] = t;
            }
        }
    }
}

// ---- Rung 3, decode variant: 4-bit matrix-vector products (M = 1). ----
//
// With one row of x, v3's 4-bit kernel is bound by the unpacking, not by
// memory: four instructions a weight. This variant needs about three and a
// full grid. A nibble q at bit 4p of a word (p <= 4) is turned into a float
// in place: OR-ing the masked word into 2^23 gives 2^23 + q·16^p exactly,
// so one lop3 and one subtraction make q·16^p, and x, which every row of
// the warp shares, is scaled by 16^-p once (exact: a power of two). The top
// three nibbles take one shift first. Each warp takes GV_ROWS rows of W;
// when rows are few, wk warps of a block split a row's K and add their
// sums in shared memory, so that even 896 rows fill every multiprocessor.
#ifndef GV_ROWS
#define GV_ROWS 8
#endif
#ifndef GV_UNROLL
#define GV_UNROLL 1
#endif
#ifndef GV_MINB  // blocks per multiprocessor the registers must allow
#define GV_MINB 2
#endif

extern "C" __global__ void __launch_bounds__(256, GV_MINB) matmul_q4_gemv(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk) {
    __shared__ float red[8][GV_ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int set = warp / wk, part = warp % wk;
    const int n0 = (blockIdx.x * (8 / wk) + set) * GV_ROWS;
    const int K32 = K / 32, per = group / 32, G = K / group, stride = 32 * wk;
    const uint4* wr[GV_ROWS];
    const unsigned short *sr[GV_ROWS], *br[GV_ROWS];
    float acc[GV_ROWS];
#pragma unroll
    for (int q = 0; q < GV_ROWS; q++) {
        size_t n = (size_t)min(n0 + q, N - 1);  // rows past N read row N-1 and are not written
        wr[q] = (const uint4*)(w + n * (K / 8));
        sr[q] = scales + n * G;
        br[q] = biases + n * G;
        acc[q] = 0.0f;
    }
    const float c[8] = {1.0f, 0.0625f, 0.00390625f, 0.000244140625f, 0.0000152587890625f,
                        0.00390625f, 0.000244140625f, 0.0000152587890625f};
    for (int j0 = part * 32 + lane; j0 < K32; j0 += stride * GV_UNROLL) {
        uint4 v[GV_UNROLL][GV_ROWS];
        float s[GV_UNROLL][GV_ROWS], b[GV_UNROLL][GV_ROWS];
#pragma unroll
        for (int u = 0; u < GV_UNROLL; u++) {
            int j = j0 + u * stride;
#pragma unroll
            for (int q = 0; q < GV_ROWS; q++) {
                if (j < K32) {
                    v[u][q] = __ldcs(wr[q] + j);  // read once: keep it out of L1/L2's way
                    s[u][q] = __uint_as_float(((unsigned int)__ldg(sr[q] + j / per)) << 16);
                    b[u][q] = __uint_as_float(((unsigned int)__ldg(br[q] + j / per)) << 16);
                } else {
                    v[u][q] = make_uint4(0, 0, 0, 0);
                    s[u][q] = b[u][q] = 0.0f;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < GV_UNROLL; u++) {
            int j = j0 + u * stride;
            if (j >= K32) break;
            const float4* xr = (const float4*)x + 8 * j;
            float xs[4][8];
            float sx = 0.0f;
#pragma unroll
            for (int t = 0; t < 4; t++) {
                float4 a = __ldg(xr + 2 * t), bb = __ldg(xr + 2 * t + 1);
                float xv[8] = {a.x, a.y, a.z, a.w, bb.x, bb.y, bb.z, bb.w};
                sx += ((xv[0] + xv[1]) + (xv[2] + xv[3])) + ((xv[4] + xv[5]) + (xv[6] + xv[7]));
#pragma unroll
                for (int e = 0; e < 8; e++) xs[t][e] = xv[e] * c[e];
            }
#pragma unroll
            for (int q = 0; q < GV_ROWS; q++) {
                float qx = q4_word(v[u][q].x, xs[0], 0.0f);
                qx = q4_word(v[u][q].y, xs[1], qx);
                qx = q4_word(v[u][q].z, xs[2], qx);
                qx = q4_word(v[u][q].w, xs[3], qx);
                acc[q] = fmaf(s[u][q], qx, fmaf(b[u][q], sx, acc[q]));
            }
        }
    }
#pragma unroll
    for (int q = 0; q < GV_ROWS; q++) {
        float t = warp_sum(acc[q]);
        if (lane == 0) red[warp][q] = t;
    }
    __syncthreads();
    if (part == 0 && lane < GV_ROWS && n0 + lane < N) {
        float t = 0.0f;
        for (int p = 0; p < wk; p++) t += red[warp + p][lane];
        y[n0 + lane] = t;
    }
}

// ---- Rung 4: prefill on the tensor cores. ----
//
// A block computes a 64 x 64 tile of y with 4 warps (2 x 2, 32 x 32 each),
// stepping through K 32 at a time: x's 64 x 32 slice is rounded to bf16 and
// W's 32-wide slice of 64 rows (4-bit: dequantized to bf16) is staged in
// shared memory, then each warp issues 2 x 4 x 2 mma.sync.m16n8k16 (bf16 in,
// float32 accumulators in registers). Rows padded by 8 bf16 keep a warp's
// fragment loads on 32 different banks. The next slice is loaded from device
// memory into registers while the tensor cores work on this one.
#define BM 64
#define BN 64
#define BK 32
#define LDS (BK + 8)

__device__ __forceinline__ void mma_bf16(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Loads slice k0 of x (4 float4 a thread) and of W (2 x 8 bf16 a thread)
// into registers, zero past the edges.
template <bool Q4>
__device__ __forceinline__ void v4_fetch(const float* __restrict__ x, const unsigned short* __restrict__ w16,
                                         const unsigned int* __restrict__ wq,
                                         const unsigned short* __restrict__ scales,
                                         const unsigned short* __restrict__ biases,
                                         int M, int N, int K, int group, int m0, int n0, int k0,
                                         float4* xa, uint4* wb) {
    int tid = threadIdx.x;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int idx = tid + 128 * i, r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;
        int m = m0 + r, k = k0 + c;
        xa[i] = (m < M && k < K) ? *(const float4*)(x + (size_t)m * K + k) : make_float4(0, 0, 0, 0);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int idx = tid + 128 * i, r = idx / (BK / 8), c = (idx % (BK / 8)) * 8;
        int n = n0 + r, k = k0 + c;
        if (n >= N || k >= K) {
            wb[i] = make_uint4(0, 0, 0, 0);
        } else if (!Q4) {
            wb[i] = __ldcs((const uint4*)(w16 + (size_t)n * K + k));
        } else {
            unsigned int word = __ldcs(wq + (size_t)n * (K / 8) + k / 8);
            size_t g = (size_t)n * (K / group) + k / group;
            float s = __uint_as_float(((unsigned int)scales[g]) << 16);
            float b = __uint_as_float(((unsigned int)biases[g]) << 16);
            float f[8];
#pragma unroll
            for (int t = 0; t < 8; t++) f[t] = (float)((word >> (4 * t)) & 15u) * s + b;
            wb[i] = make_uint4(pack_bf16(f[0], f[1]), pack_bf16(f[2], f[3]), pack_bf16(f[4], f[5]),
                               pack_bf16(f[6], f[7]));
        }
    }
}

template <bool Q4>
__device__ __forceinline__ void matmul_v4(float* __restrict__ y, const float* __restrict__ x,
                                          const unsigned short* __restrict__ w16,
                                          const unsigned int* __restrict__ wq,
                                          const unsigned short* __restrict__ scales,
                                          const unsigned short* __restrict__ biases,
                                          int M, int N, int K, int group) {
    __shared__ __align__(16) unsigned short As[BM][LDS];
    __shared__ __align__(16) unsigned short Bs[BN][LDS];
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    int g = lane / 4, t = lane % 4;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float c[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) c[i][j][e] = 0.0f;

    float4 xa[4];
    uint4 wb[2];
    v4_fetch<Q4>(x, w16, wq, scales, biases, M, N, K, group, m0, n0, 0, xa, wb);
    for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int idx = tid + 128 * i, r = idx / (BK / 4), cc = (idx % (BK / 4)) * 4;
            *(uint2*)&As[r][cc] = make_uint2(pack_bf16(xa[i].x, xa[i].y), pack_bf16(xa[i].z, xa[i].w));
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int idx = tid + 128 * i, r = idx / (BK / 8), cc = (idx % (BK / 8)) * 8;
            *(uint4*)&Bs[r][cc] = wb[i];
        }
        __syncthreads();
        if (k0 + BK < K) v4_fetch<Q4>(x, w16, wq, scales, biases, M, N, K, group, m0, n0, k0 + BK, xa, wb);
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned int a[2][4];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int r = wm + 16 * i + g;
                a[i][0] = *(const unsigned int*)&As[r][kk + 2 * t];
                a[i][1] = *(const unsigned int*)&As[r + 8][kk + 2 * t];
                a[i][2] = *(const unsigned int*)&As[r][kk + 2 * t + 8];
                a[i][3] = *(const unsigned int*)&As[r + 8][kk + 2 * t + 8];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int nn = wn + 8 * j + g;
                unsigned int b0 = *(const unsigned int*)&Bs[nn][kk + 2 * t];
                unsigned int b1 = *(const unsigned int*)&Bs[nn][kk + 2 * t + 8];
#pragma unroll
                for (int i = 0; i < 2; i++) mma_bf16(c[i][j], a[i], b0, b1);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int m = m0 + wm + 16 * i + g, n = n0 + wn + 8 * j + 2 * t;
#pragma unroll
            for (int h = 0; h < 2; h++) {  // rows g and g + 8
                int mm = m + 8 * h;
                if (mm < M) {
                    if (n < N) y[(size_t)mm * N + n] = c[i][j][2 * h];
                    if (n + 1 < N) y[(size_t)mm * N + n + 1] = c[i][j][2 * h + 1];
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) matmul_bf16_v4(
        float* __restrict__ y, const float* __restrict__ x, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v4<false>(y, x, w, nullptr, nullptr, nullptr, M, N, K, 64);
}

extern "C" __global__ void __launch_bounds__(128) matmul_q4_v4(
        float* __restrict__ y, const float* __restrict__ x, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int M, int N, int K, int group) {
    matmul_v4<true>(y, x, nullptr, w, scales, biases, M, N, K, group);
}

// ---- Rung 3, decode variant on the tensor cores (M = 1, K a multiple of
// 128, groups of 64 or 128). ----
//
// Even at three instructions a weight, unpacking on the CUDA cores keeps the
// float32 variant above far from the memory's rate. Here the matrix units do
// the multiplications: a warp takes 16 rows of W (RT = 1 or 2 such tiles) and 128
// columns at a time and issues 8 mma.sync.m16n8k16 per tile, W in the
// A operand, x in B. The codes become bf16 exactly: OR-ing a nibble pair
// (bits 0-3 and 16-19) into 0x43004300 gives the bf16 pair (128 + q, 128 + q'),
// and one packed subtraction leaves (q, q'), about 1.4 instructions a weight
// with the shifts. x does not fit bf16 exactly, so it goes in as two bf16
// parts, hi = bf16(x) and lo = bf16(x - hi), in two columns of B: together
// they carry 16 bits of x, and the products add up in float32. A lane's
// 16-byte load is 32 codes of one group; with groups of 64 the 128 columns
// of a step are two groups, kept apart in columns 0-1 and 2-3 of B:
//   column 0: x_hi where the group is the first of the step, else 0
//   column 1: x_lo, first group;  columns 2, 3: the same for the second
// (groups of 128 use columns 0 and 1), so D[row][c] holds one group's sum
// and lane t = 0 (1) of each row applies the first (second) group's scale
// and bias: y += s·(D_hi + D_lo) + b·Σx. Each block first writes x's B
// fragments and per-group sums into shared memory, once, for all its warps.

#ifndef QT_U
#define QT_U 2  // steps of K a warp loads at once
#endif

__device__ __forceinline__ unsigned int q4_pair(unsigned int word, int j) {
    unsigned int v = ((word >> (4 * j)) & 0x000F000Fu) | 0x43004300u, r;
    // (128 + q)·1 - 128, exact
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(v), "r"(0x3F803F80u), "r"(0xC300C300u));
    return r;
}

__device__ __forceinline__ unsigned int uint4_word(const uint4& v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// x's B fragments and per-group sums, once per product, for
// matmul_q4_gemv_tc: xf holds [K/128][4 lanes t][8 mma] (b0, b1) of x_hi,
// then the same of x_lo, then the K/group sums of x. One block per 1024
// columns.
extern "C" __global__ void __launch_bounds__(256) q4_prep_x(unsigned int* __restrict__ xf, const float* __restrict__ x,
                                                            int K, int group) {
    uint2* fh = (uint2*)xf;
    uint2* fl = fh + K / 4;
    float* gs = (float*)(fl + K / 4);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    // Entry (ks, t, s) holds the pairs mma s of step ks needs from lane
    // chunk t: b0 = (x[k], x[k + 4]), b1 = (x[k + 1], x[k + 5]) with
    // k = 128 ks + 32 t + 8 (s / 2) + 2 (s % 2), the order q4_pair takes
    // the codes of a word in.
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < K / 4; idx += gridDim.x * blockDim.x) {
        int s = idx & 7, tt = (idx >> 3) & 3, ks = idx >> 5;
        int k = ks * 128 + 32 * tt + 8 * (s >> 1) + 2 * (s & 1);
        float x0 = __ldg(x + k), x4 = __ldg(x + k + 4), x1 = __ldg(x + k + 1), x5 = __ldg(x + k + 5);
        unsigned int h0 = pack_bf16(x0, x4), h1 = pack_bf16(x1, x5);
        fh[idx] = make_uint2(h0, h1);
        fl[idx] = make_uint2(pack_bf16(x0 - bf16_lo(h0), x4 - bf16_hi(h0)), pack_bf16(x1 - bf16_lo(h1), x5 - bf16_hi(h1)));
    }
    for (int gi = blockIdx.x * 8 + warp; gi < K / group; gi += gridDim.x * 8) {
        float sum = 0.0f;
        for (int e = lane; e < group; e += 32) sum += __ldg(x + gi * group + e);
        sum = warp_sum(sum);
        if (lane == 0) gs[gi] = sum;
    }
}

template <int RT>
__device__ __forceinline__ void q4_gemv_tc(float* __restrict__ y, const unsigned int* __restrict__ xf,
                                           const unsigned int* __restrict__ w,
                                           const unsigned short* __restrict__ scales,
                                           const unsigned short* __restrict__ biases, int N, int K, int group,
                                           int wk) {
    const uint2* fh = (const uint2*)xf;  // q4_prep_x's layout
    const uint2* fl = fh + K / 4;
    const float* gs = (const float*)(fl + K / 4);
    __shared__ float red[8][RT][16];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int set = warp / wk, part = warp % wk;
    const int tile0 = (blockIdx.x * (8 / wk) + set) * RT;
    const int KS = K / 128, K32 = K / 32, G = K / group, ngr = 128 / group;
    const bool folds = t < ngr;                                       // lanes that apply scales
    const bool useB = (g >> 1) < ngr && (g >> 1) == (32 * t) / group;  // this lane's column of B is not 0
    const uint4* w4 = (const uint4*)w;
    int roff[RT][2], goff[RT][2];
    float acc[RT][2];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int n = min((tile0 + r) * 16 + g + 8 * h, N - 1);  // rows past N read row N-1 and are not written
            roff[r][h] = n * K32 + t;
            goff[r][h] = n * G + t;
            acc[r][h] = 0.0f;
        }
    // QT_U steps of K per iteration, the next iteration's loads in flight
    // during this one's arithmetic.
    uint4 wv[QT_U][RT][2], wn[QT_U][RT][2];
    float sc[QT_U][RT][2], bi[QT_U][RT][2], scn[QT_U][RT][2], bin[QT_U][RT][2];
    auto fetch = [&](int k0, uint4 (&v)[QT_U][RT][2], float (&sv)[QT_U][RT][2], float (&bv)[QT_U][RT][2]) {
#pragma unroll
        for (int u = 0; u < QT_U; u++) {
            int ks = k0 + u * wk;
#pragma unroll
            for (int r = 0; r < RT; r++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    bool in = ks < KS;
                    v[u][r][h] = in ? __ldcs(w4 + roff[r][h] + 4 * ks) : make_uint4(0, 0, 0, 0);
                    sv[u][r][h] = folds && in ? __uint_as_float(((unsigned int)__ldg(scales + goff[r][h] + ks * ngr)) << 16) : 0.0f;
                    bv[u][r][h] = folds && in ? __uint_as_float(((unsigned int)__ldg(biases + goff[r][h] + ks * ngr)) << 16) : 0.0f;
                }
        }
    };
    fetch(part, wv, sc, bi);

    const uint2* fsrc = (g & 1) ? fl : fh;

    for (int k0 = part; k0 < KS; k0 += QT_U * wk) {
        fetch(k0 + QT_U * wk, wn, scn, bin);
#pragma unroll
        for (int u = 0; u < QT_U; u++) {
            const int ks = k0 + u * wk;
            if (ks >= KS) break;
            unsigned int bf[8][2];
            if (useB) {
                const uint4* fp = (const uint4*)(fsrc + (ks * 4 + t) * 8);
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    uint4 f = fp[i];
                    bf[2 * i][0] = f.x; bf[2 * i][1] = f.y; bf[2 * i + 1][0] = f.z; bf[2 * i + 1][1] = f.w;
                }
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) bf[i][0] = bf[i][1] = 0u;
            }
            const float xsum = folds ? gs[ks * ngr + t] : 0.0f;
#pragma unroll
            for (int r = 0; r < RT; r++) {
                float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int s = 0; s < 8; s++) {
                    unsigned int lo = uint4_word(wv[u][r][0], s >> 1), hi = uint4_word(wv[u][r][1], s >> 1);
                    int j = 2 * (s & 1);
                    unsigned int a[4] = {q4_pair(lo, j), q4_pair(hi, j), q4_pair(lo, j + 1), q4_pair(hi, j + 1)};
                    mma_bf16(d, a, bf[s][0], bf[s][1]);
                }
                acc[r][0] = fmaf(sc[u][r][0], d[0] + d[1], fmaf(bi[u][r][0], xsum, acc[r][0]));
                acc[r][1] = fmaf(sc[u][r][1], d[2] + d[3], fmaf(bi[u][r][1], xsum, acc[r][1]));
            }
        }
#pragma unroll
        for (int u = 0; u < QT_U; u++)
#pragma unroll
            for (int r = 0; r < RT; r++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    wv[u][r][h] = wn[u][r][h];
                    sc[u][r][h] = scn[u][r][h];
                    bi[u][r][h] = bin[u][r][h];
                }
    }
    // Lanes 4g … 4g + 3 hold parts of rows g and g + 8; then the wk warps.
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float v = acc[r][h];
            v += __shfl_xor_sync(0xffffffffu, v, 1);
            v += __shfl_xor_sync(0xffffffffu, v, 2);
            if (t == 0) red[warp][r][g + 8 * h] = v;
        }
    __syncthreads();
    if (part == 0) {
        for (int i = lane; i < RT * 16; i += 32) {
            int r = i / 16, row = (tile0 + r) * 16 + i % 16;
            if (row < N) {
                float v = 0.0f;
                for (int p = 0; p < wk; p++) v += red[warp + p][r][i % 16];
                y[row] = v;
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(256) matmul_q4_gemv_tc1(
        float* __restrict__ y, const unsigned int* __restrict__ xf, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk) {
    q4_gemv_tc<1>(y, xf, w, scales, biases, N, K, group, wk);
}

extern "C" __global__ void __launch_bounds__(256) matmul_q4_gemv_tc2(
        float* __restrict__ y, const unsigned int* __restrict__ xf, const unsigned int* __restrict__ w,
        const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
        int N, int K, int group, int wk) {
    q4_gemv_tc<2>(y, xf, w, scales, biases, N, K, group, wk);
}

// ---- Rung 5: prefill on the tensor cores, pipelined. ----
//
// Rung 4 stalls on every slice: its loads go through registers, one slice
// ahead, and each warp's 32 x 32 tile reuses an operand fragment only
// twice. Rung 5 (bf16 W) works as fast GEMM kernels on this generation do
// without Hopper's wgmma:
//   - x is first rounded to bf16 once (x_to_bf16), so both operands can be
//     copied straight from device to shared memory;
//   - a block computes a 128 x 128 tile of y with 8 warps of 64 x 32 each:
//     16 mma.sync per 16-wide step of K against 6 fragment loads;
//   - cp.async copies slice k + 2 of both operands into shared memory while
//     the tensor cores work on slice k (3 stages of 64-wide slices);
//   - ldmatrix loads each 8 x 8 fragment for the whole warp in one
//     instruction, and the 16-byte chunks of each row are placed at
//     chunk ^ (row % 8), so that the 8 rows an ldmatrix reads fall on 8
//     different groups of banks;
//   - the blocks that share a tile of W run together, so W is read from
//     device memory once.
// BenchmarkW2D4V5Variants compares slice widths, stages and tile widths.
#define V5_BM 128
#ifndef V5_BK  // 32 or 64
#define V5_BK 64
#endif
#ifndef V5_STAGES
#define V5_STAGES 3
#endif
#define V5_CH (V5_BK / 8)  // 16-byte chunks a row of a slice
#define V5_THREADS 256

extern "C" __global__ void x_to_bf16(unsigned int* __restrict__ dst, const float* __restrict__ src, long long n4) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 v = ((const float4*)src)[i];
    ((uint2*)dst)[i] = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
}

// A 4-bit W (MLX affine) decoded to bf16, q·scale + bias rounded once, for
// the prefill rungs that read bf16 tiles: one thread a 32-bit word of 8
// codes (low bits first), n8 words in all, K / 8 words a row.
extern "C" __global__ void q4_to_bf16(uint4* __restrict__ dst, const unsigned int* __restrict__ w,
                                      const unsigned short* __restrict__ scales,
                                      const unsigned short* __restrict__ biases, long long n8, int K, int group) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const int kw = K / 8;
    const long long row = i / kw, g = row * (K / group) + (i % kw) * 8 / group;
    const float s = __uint_as_float((unsigned int)scales[g] << 16), b = __uint_as_float((unsigned int)biases[g] << 16);
    const unsigned int q = w[i];
    unsigned int p[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
        p[j] = pack_bf16(fmaf((float)((q >> (8 * j)) & 15u), s, b), fmaf((float)((q >> (8 * j + 4)) & 15u), s, b));
    dst[i] = make_uint4(p[0], p[1], p[2], p[3]);
}

__device__ __forceinline__ unsigned int smem_u32(const void* p) {
    unsigned int r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }\n" : "=r"(r) : "l"(p));
    return r;
}

// 16 bytes from global to shared memory, asynchronously; zeros where
// valid is false (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(unsigned int dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned int* r, unsigned int addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// Byte offset of 16-byte chunk c of row r in a slice: 128-byte rows (BK 64)
// put chunk c at c ^ (r % 8), 64-byte rows (BK 32) at c ^ ((r / 2) % 4), so
// that the 8 rows one ldmatrix reads hit 8 different groups of 4 banks.
__device__ __forceinline__ unsigned int v5_off(int r, int c) {
    if (V5_BK == 64) return (unsigned int)(r * 128 + ((c ^ (r & 7)) << 4));
    return (unsigned int)(r * 64 + ((c ^ ((r >> 1) & 3)) << 4));
}

// Queues the copies of slice k0 of A (M x K bf16, BM rows) and W (N x K
// bf16, TBN rows) into one stage, V5_CH chunks of 16 bytes a row; columns
// from ke on (the end of this block's range of K) are zeros.
template <int TBN>
__device__ __forceinline__ void v5_load(unsigned int sa, unsigned int sb, const unsigned short* __restrict__ a,
                                        const unsigned short* __restrict__ w, int M, int N, int K, int m0,
                                        int n0, int k0, int ke) {
#pragma unroll
    for (int i = 0; i < V5_BM * V5_CH / V5_THREADS; i++) {
        int id = threadIdx.x + V5_THREADS * i, r = id / V5_CH, c = id % V5_CH, k = k0 + c * 8, m = m0 + r;
        bool kin = k < ke;
        cp_async16(sa + v5_off(r, c), a + (size_t)min(m, M - 1) * K + (kin ? k : 0), kin && m < M);
    }
#pragma unroll
    for (int i = 0; i < TBN * V5_CH / V5_THREADS; i++) {
        int id = threadIdx.x + V5_THREADS * i, r = id / V5_CH, c = id % V5_CH, k = k0 + c * 8, n = n0 + r;
        bool kin = k < ke;
        cp_async16(sb + v5_off(r, c), w + (size_t)min(n, N - 1) * K + (kin ? k : 0), kin && n < N);
    }
}

// TBN is 128 (8 warps of 64 x 32) or 64 (8 warps of 32 x 32), the latter for
// matrices with few rows, so that their tiles still fill the GPU. The block
// sums over columns kb … ke-1 of K (all of them, or one range of a split).
template <int TBN>
__device__ __forceinline__ void matmul_v5(float* __restrict__ y, const unsigned short* __restrict__ a,
                                          const unsigned short* __restrict__ w, int M, int N, int K, int kb, int ke) {
    constexpr int WNW = TBN / 32, WMW = 8 / WNW;  // warps along N and M
    constexpr int MI = V5_BM / WMW / 16;         // 16-row fragments per warp
    constexpr int STAGE = (V5_BM + TBN) * V5_BK * 2;
    extern __shared__ __align__(128) unsigned char v5_smem[];
    const unsigned int base = smem_u32(v5_smem);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = (warp / WNW) * (16 * MI), wn = (warp % WNW) * 32;
    // Blocks that share a tile of W are launched together (grid X runs over
    // the rows of x), so W is read from device memory once and from L2
    // for the other row tiles of x.
    const int m0 = blockIdx.x * V5_BM, n0 = blockIdx.y * TBN;
    const int KT = (ke - kb + V5_BK - 1) / V5_BK;

    float c[MI][4][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) c[i][j][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < V5_STAGES - 1; s++) {
        if (s < KT) v5_load<TBN>(base + s * STAGE, base + s * STAGE + V5_BM * V5_BK * 2, a, w, M, N, K, m0, n0, kb + s * V5_BK, ke);
        asm volatile("cp.async.commit_group;\n" ::);
    }

    for (int kt = 0; kt < KT; kt++) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(V5_STAGES - 2));
        __syncthreads();  // slice kt is in, and every warp is done with slice kt - 1
        int nk = kt + V5_STAGES - 1;
        if (nk < KT) {
            unsigned int sa = base + (nk % V5_STAGES) * STAGE;
            v5_load<TBN>(sa, sa + V5_BM * V5_BK * 2, a, w, M, N, K, m0, n0, kb + nk * V5_BK, ke);
        }
        asm volatile("cp.async.commit_group;\n" ::);
        const unsigned int sa = base + (kt % V5_STAGES) * STAGE, sb = sa + V5_BM * V5_BK * 2;
#pragma unroll
        for (int kk = 0; kk < V5_BK / 16; kk++) {
            unsigned int af[MI][4], bf[2][4];
#pragma unroll
            for (int i = 0; i < MI; i++)  // rows wm + 16i + lane % 16, chunk 2kk + lane / 16
                ldmatrix_x4(af[i], sa + v5_off(wm + 16 * i + (lane % 16), 2 * kk + lane / 16));
#pragma unroll
            for (int j = 0; j < 2; j++)  // rows wn + 16j + 8(lane / 16) + lane % 8, chunk 2kk + (lane / 8) % 2
                ldmatrix_x4(bf[j], sb + v5_off(wn + 16 * j + 8 * (lane / 16) + (lane % 8), 2 * kk + (lane / 8) % 2));
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_bf16(c[i][j], af[i], bf[j / 2][2 * (j % 2)], bf[j / 2][2 * (j % 2) + 1]);
        }
    }
    asm volatile("cp.async.wait_group 0;\n" ::);

    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < MI; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int n = n0 + wn + 8 * j + 2 * t;
#pragma unroll
            for (int h = 0; h < 2; h++) {  // rows g and g + 8
                int m = m0 + wm + 16 * i + g + 8 * h;
                if (m >= M) continue;
                float* yr = y + (size_t)m * N + n;
                if (n + 1 < N && (N % 2) == 0) {
                    *(float2*)yr = make_float2(c[i][j][2 * h], c[i][j][2 * h + 1]);
                } else {
                    if (n < N) yr[0] = c[i][j][2 * h];
                    if (n + 1 < N) yr[1] = c[i][j][2 * h + 1];
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(V5_THREADS, 2) matmul_bf16_v5(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v5<128>(y, a, w, M, N, K, 0, K);
}

extern "C" __global__ void __launch_bounds__(V5_THREADS, 2) matmul_bf16_v5_n64(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v5<64>(y, a, w, M, N, K, 0, K);
}

// Split K, for products whose tiles are too few to fill the GPU (a serving
// step of a few hundred rows through a narrow matrix): block z sums columns
// z·kchunk … of K into its own M x N slice of part, and matmul_sum_splits
// adds the slices in order, so the result does not depend on timing.
extern "C" __global__ void __launch_bounds__(V5_THREADS, 2) matmul_bf16_v5_splitk(
        float* __restrict__ part, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K, int kchunk) {
    const int kb = blockIdx.z * kchunk;
    matmul_v5<128>(part + (size_t)blockIdx.z * M * N, a, w, M, N, K, kb, min(K, kb + kchunk));
}

extern "C" __global__ void matmul_sum_splits(float* __restrict__ y, const float* __restrict__ part, int splits,
                                             long long mn) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= mn) return;
    float s = 0.0f;
    for (int z = 0; z < splits; z++) s += part[(size_t)z * mn + i];
    y[i] = s;
}
#endif  // MATVEC_CORE_ONLY
