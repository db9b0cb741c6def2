// Week 2 Day 4, rungs 3 and 4: y = x·Wᵀ on an Apple GPU, fast. Same
// arguments and layouts as matmul.metal. (Provided.)
#include <metal_stdlib>
#include <metal_simdgroup_matrix>
using namespace metal;

static inline float bf16_lo(uint v) { return as_type<float>(v << 16); }
static inline float bf16_hi(uint v) { return as_type<float>(v & 0xffff0000u); }

// ---- Rung 3: one SIMD group per row n of W, 16-byte loads, up to 8 rows
// of x per pass over W (grid Y covers the rest). When rows are few, wk
// SIMD groups of a threadgroup (1, 2, 4 or 8) share a row, each taking every
// wk-th 16-byte slice, and add their sums in threadgroup memory. ----
#define V3_ROWS 8

kernel void matmul_bf16_v3(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                           const device ushort* w [[buffer(2)]], constant int& M [[buffer(3)]],
                           constant int& N [[buffer(4)]], constant int& K [[buffer(5)]],
                           constant int& wk [[buffer(6)]],
                           constant int& pre [[buffer(7)]],  // CUDA's L2 request; unused here
                           uint2 tg [[threadgroup_position_in_grid]],
                           uint sg [[simdgroup_index_in_threadgroup]],
                           uint sgs [[simdgroups_per_threadgroup]],
                           uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float red[32][V3_ROWS];
    int set = int(sg) / wk, part = int(sg) % wk;
    int n = int(tg.x) * (int(sgs) / wk) + set, m0 = int(tg.y) * V3_ROWS;
    int rows = min(V3_ROWS, M - m0);
    int K8 = K / 8;
    float acc[V3_ROWS];
    for (int r = 0; r < V3_ROWS; r++) acc[r] = 0.0f;
    if (n < N) {
        const device uint4* wr = (const device uint4*)(w + ulong(n) * K);
        for (int j = part * 32 + int(lane); j < K8; j += 32 * wk) {
            uint4 v = wr[j];
            float4 f0 = float4(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
            float4 f1 = float4(bf16_lo(v.z), bf16_hi(v.z), bf16_lo(v.w), bf16_hi(v.w));
            for (int r = 0; r < V3_ROWS; r++) {
                if (r < rows) {
                    const device float4* xr = (const device float4*)(x + ulong(m0 + r) * K) + 2 * j;
                    acc[r] += dot(xr[0], f0) + dot(xr[1], f1);
                }
            }
        }
    }
    for (int r = 0; r < V3_ROWS; r++) {
        float s = simd_sum(acc[r]);
        if (lane == 0) red[sg][r] = s;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (part == 0 && n < N && int(lane) < rows) {
        float s = 0.0f;
        for (int p = 0; p < wk; p++) s += red[int(sg) + p][lane];
        y[ulong(m0 + int(lane)) * N + n] = s;
    }
}

// 4-bit: a lane's 16 bytes are 32 weights of one group, so
//   sum_k x_k (q_k s + b) = s · sum_k x_k q_k + b · sum_k x_k.
static inline void q4_dot8(uint word, float4 a, float4 b, thread float& qx, thread float& sx) {
    float4 qa = float4(float(word & 15u), float((word >> 4) & 15u), float((word >> 8) & 15u), float((word >> 12) & 15u));
    float4 qb = float4(float((word >> 16) & 15u), float((word >> 20) & 15u), float((word >> 24) & 15u), float(word >> 28));
    qx += dot(a, qa) + dot(b, qb);
    sx += dot(a + b, float4(1.0f));
}

kernel void matmul_q4_v3(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                         const device uint* w [[buffer(2)]], const device ushort* scales [[buffer(3)]],
                         const device ushort* biases [[buffer(4)]], constant int& M [[buffer(5)]],
                         constant int& N [[buffer(6)]], constant int& K [[buffer(7)]],
                         constant int& group [[buffer(8)]],
                         uint2 tg [[threadgroup_position_in_grid]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint sgs [[simdgroups_per_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
    int n = int(tg.x * sgs + sg), m0 = int(tg.y) * V3_ROWS;
    if (n >= N) return;
    int rows = min(V3_ROWS, M - m0);
    const device uint4* wr = (const device uint4*)(w + ulong(n) * (K / 8));
    const device ushort* sr = scales + ulong(n) * (K / group);
    const device ushort* br = biases + ulong(n) * (K / group);
    int K32 = K / 32, per = group / 32;
    float acc[V3_ROWS];
    for (int r = 0; r < V3_ROWS; r++) acc[r] = 0.0f;
    for (int j = int(lane); j < K32; j += 32) {
        uint4 v = wr[j];
        float s = bf16_lo(uint(sr[j / per])), b = bf16_lo(uint(br[j / per]));
        for (int r = 0; r < V3_ROWS; r++) {
            if (r < rows) {
                const device float4* xr = (const device float4*)(x + ulong(m0 + r) * K) + 8 * j;
                float qx = 0.0f, sx = 0.0f;
                q4_dot8(v.x, xr[0], xr[1], qx, sx);
                q4_dot8(v.y, xr[2], xr[3], qx, sx);
                q4_dot8(v.z, xr[4], xr[5], qx, sx);
                q4_dot8(v.w, xr[6], xr[7], qx, sx);
                acc[r] += s * qx + b * sx;
            }
        }
    }
    for (int r = 0; r < V3_ROWS; r++) {
        if (r < rows) {
            float t = simd_sum(acc[r]);
            if (lane == 0) y[ulong(m0 + r) * N + n] = t;
        }
    }
}

// ---- Rung 4: prefill on the matrix units (simdgroup matrices). ----
//
// A threadgroup of 128 threads (4 SIMD groups, 2 x 2, 32 x 32 each)
// computes a 64 x 64 tile of y, stepping through K 32 at a time: x's and
// W's slices are staged in threadgroup memory as float (W widened or
// dequantized), then each SIMD group multiplies 8 x 8 blocks with
// simdgroup_multiply_accumulate, W's blocks loaded transposed.
#define BM 64
#define BN 64
#define BK 32

template <bool Q4>
static inline void matmul_v4(device float* y, const device float* x, const device ushort* w16,
                             const device uint* wq, const device ushort* scales, const device ushort* biases,
                             int M, int N, int K, int group, uint2 tg, uint tid, uint sg, uint lane,
                             threadgroup float* As, threadgroup float* Bs, threadgroup float* Cs) {
    int m0 = int(tg.y) * BM, n0 = int(tg.x) * BN;
    int wm = int(sg / 2) * 32, wn = int(sg % 2) * 32;
    simdgroup_float8x8 c[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) c[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int idx = int(tid); idx < BM * BK; idx += 128) {
            int r = idx / BK, cc = idx % BK, m = m0 + r, k = k0 + cc;
            As[idx] = (m < M && k < K) ? x[ulong(m) * K + k] : 0.0f;
        }
        if (!Q4) {
            for (int idx = int(tid); idx < BN * BK; idx += 128) {
                int r = idx / BK, cc = idx % BK, n = n0 + r, k = k0 + cc;
                Bs[idx] = (n < N && k < K) ? bf16_lo(uint(w16[ulong(n) * K + k])) : 0.0f;
            }
        } else {
            for (int idx = int(tid); idx < BN * (BK / 8); idx += 128) {
                int r = idx / (BK / 8), cw = idx % (BK / 8), n = n0 + r, k = k0 + 8 * cw;
                threadgroup float* dst = Bs + r * BK + 8 * cw;
                if (n < N && k < K) {
                    uint word = wq[ulong(n) * (K / 8) + k / 8];
                    ulong g = ulong(n) * (K / group) + k / group;
                    float s = bf16_lo(uint(scales[g])), b = bf16_lo(uint(biases[g]));
                    for (int t = 0; t < 8; t++) dst[t] = float((word >> (4 * t)) & 15u) * s + b;
                } else {
                    for (int t = 0; t < 8; t++) dst[t] = 0.0f;
                }
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int kk = 0; kk < BK; kk += 8) {
            simdgroup_float8x8 a[4], b[4];
            for (int i = 0; i < 4; i++) simdgroup_load(a[i], As + (wm + 8 * i) * BK + kk, BK);
            for (int j = 0; j < 4; j++) simdgroup_load(b[j], Bs + (wn + 8 * j) * BK + kk, BK, ulong2(0, 0), true);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) simdgroup_multiply_accumulate(c[i][j], a[i], b[j], c[i][j]);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    threadgroup float* mine = Cs + sg * 64;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            simdgroup_store(c[i][j], mine, 8);
            simdgroup_barrier(mem_flags::mem_threadgroup);
            for (int e = int(lane); e < 64; e += 32) {
                int m = m0 + wm + 8 * i + e / 8, n = n0 + wn + 8 * j + e % 8;
                if (m < M && n < N) y[ulong(m) * N + n] = mine[e];
            }
            simdgroup_barrier(mem_flags::mem_threadgroup);
        }
    }
}

kernel void matmul_bf16_v4(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                           const device ushort* w [[buffer(2)]], constant int& M [[buffer(3)]],
                           constant int& N [[buffer(4)]], constant int& K [[buffer(5)]],
                           uint2 tg [[threadgroup_position_in_grid]],
                           uint tid [[thread_index_in_threadgroup]],
                           uint sg [[simdgroup_index_in_threadgroup]],
                           uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float As[BM * BK], Bs[BN * BK], Cs[4 * 64];
    matmul_v4<false>(y, x, w, nullptr, nullptr, nullptr, M, N, K, 64, tg, tid, sg, lane, As, Bs, Cs);
}

kernel void matmul_q4_v4(device float* y [[buffer(0)]], const device float* x [[buffer(1)]],
                         const device uint* w [[buffer(2)]], const device ushort* scales [[buffer(3)]],
                         const device ushort* biases [[buffer(4)]], constant int& M [[buffer(5)]],
                         constant int& N [[buffer(6)]], constant int& K [[buffer(7)]],
                         constant int& group [[buffer(8)]],
                         uint2 tg [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float As[BM * BK], Bs[BN * BK], Cs[4 * 64];
    matmul_v4<true>(y, x, nullptr, w, scales, biases, M, N, K, group, tg, tid, sg, lane, As, Bs, Cs);
}
