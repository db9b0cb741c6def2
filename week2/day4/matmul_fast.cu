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

extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v3(
        float* __restrict__ y, const float* __restrict__ x, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int n0 = (blockIdx.x * (blockDim.x / 32) + warp) * V3_WROWS;
    int m0 = blockIdx.y * V3_ROWS;
    if (n0 >= N) return;
    int rows = min(V3_ROWS, M - m0);
    int K8 = K / 8;
    float acc[V3_WROWS][V3_ROWS];
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++)
#pragma unroll
        for (int r = 0; r < V3_ROWS; r++) acc[q][r] = 0.0f;
    for (int j0 = lane; j0 < K8; j0 += 32 * V3_UNROLL) {
        uint4 v[V3_WROWS][V3_UNROLL];
#pragma unroll
        for (int q = 0; q < V3_WROWS; q++) {
            const uint4* wr = (const uint4*)(w + (size_t)min(n0 + q, N - 1) * K);
#pragma unroll
            for (int u = 0; u < V3_UNROLL; u++) {
                int j = j0 + 32 * u;
                v[q][u] = j < K8 ? wr[j] : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < V3_UNROLL; u++) {
            int j = j0 + 32 * u;
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
    }
#pragma unroll
    for (int q = 0; q < V3_WROWS; q++) {
#pragma unroll
        for (int r = 0; r < V3_ROWS; r++) {
            if (r < rows) {
                float s = warp_sum(acc[q][r]);
                if (lane == 0 && n0 + q < N) y[(size_t)(m0 + r) * N + n0 + q] = s;
            }
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
