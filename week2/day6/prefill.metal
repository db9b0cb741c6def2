// Week 2 Day 6: flash attention for prefill on an Apple GPU. (Provided.)
// The same algorithm and arguments as prefill.cu: one threadgroup of 128
// threads per (16 query rows, query head), the query tile in threadgroup
// memory, key/value tiles of 32 streamed through it, causal tiles skipped.
// "Nothing seen yet" is the finite NEG (Metal's fast math may assume no
// infinities), and masks are clamped to it.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
#define NEG (-1e30f)
#define BQ 16
#define BK 16  // Metal gives a threadgroup 32 KB: 16 keys of 128 fit beside the queries
#define TPR 8
#define PAD (HEAD_DIM + 1)
#define DPT ((HEAD_DIM + TPR - 1) / TPR)

kernel void attention_prefill(device float* out [[buffer(0)]], const device float* q [[buffer(1)]],
                              const device float* k [[buffer(2)]], const device float* v [[buffer(3)]],
                              const device float* mask [[buffer(4)]], constant int& L [[buffer(5)]],
                              constant int& S [[buffer(6)]], constant int& cap [[buffer(7)]],
                              constant float& scale [[buffer(8)]], constant int& causal [[buffer(9)]],
                              constant int& has_mask [[buffer(10)]],
                              uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                              uint tid [[thread_index_in_threadgroup]]) {
    threadgroup float qs[BQ][PAD];
    threadgroup float ks[BK][PAD];
    threadgroup float vs[BK][HEAD_DIM];
    threadgroup float ps[BQ][BK];
    const int q0 = int(tg.x) * BQ, hq = int(tg.y), Hq = int(ntg.y), h = hq / GROUP;
    const int r = int(tid) / TPR, part = int(tid) % TPR;
    const int i = q0 + r;
    const int rows = min(BQ, L - q0);

    for (int t = int(tid); t < BQ * HEAD_DIM; t += BQ * TPR) {
        int rr = t / HEAD_DIM, e = t % HEAD_DIM;
        qs[rr][e] = rr < rows ? q[(ulong(q0 + rr) * Hq + hq) * HEAD_DIM + e] * (scale * LOG2E) : 0.0f;
    }
    int end = causal != 0 ? min(S, q0 + rows + S - L) : S;
    int limit = causal != 0 ? i + S - L : S - 1;

    float acc[DPT], m = NEG, l = 0.0f;
    for (int t = 0; t < DPT; t++) acc[t] = 0.0f;
    const device float* kh = k + ulong(h) * cap * HEAD_DIM;
    const device float* vh = v + ulong(h) * cap * HEAD_DIM;

    for (int j0 = 0; j0 < end; j0 += BK) {
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int t = int(tid); t < BK * HEAD_DIM; t += BQ * TPR) {
            int c = t / HEAD_DIM, e = t % HEAD_DIM;
            bool in = j0 + c < end;
            ks[c][e] = in ? kh[ulong(j0 + c) * HEAD_DIM + e] : 0.0f;
            vs[c][e] = in ? vh[ulong(j0 + c) * HEAD_DIM + e] : 0.0f;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        float s[BK / TPR], mx = m;
        for (int u = 0; u < BK / TPR; u++) {
            int c = part + u * TPR, j = j0 + c;
            float d = 0.0f;
            for (int e = 0; e < HEAD_DIM; e++) d += qs[r][e] * ks[c][e];
            if (has_mask != 0 && i < L && j < S) d += max(mask[ulong(i) * S + j], NEG) * LOG2E;
            s[u] = (j < end && j <= limit && i < L) ? max(d, NEG) : NEG;
            mx = max(mx, s[u]);
        }
        // A row's 8 threads are 8 consecutive lanes of one SIMD group.
        for (ushort off = TPR / 2; off > 0; off >>= 1) mx = max(mx, simd_shuffle_xor(mx, off));
        float ref = mx <= NEG ? 0.0f : mx;
        float corr = m <= NEG ? 0.0f : exp2(m - ref), sum = 0.0f;
        for (int u = 0; u < BK / TPR; u++) {
            float p = s[u] <= NEG ? 0.0f : exp2(s[u] - ref);
            ps[r][part + u * TPR] = p;
            sum += p;
        }
        for (ushort off = TPR / 2; off > 0; off >>= 1) sum += simd_shuffle_xor(sum, off);
        l = l * corr + sum;
        m = mx;
        simdgroup_barrier(mem_flags::mem_threadgroup);
        for (int t = 0; t < DPT; t++) {
            int e = part + t * TPR;
            if (e < HEAD_DIM) {
                float a = acc[t] * corr;
                for (int c = 0; c < BK; c++) a += ps[r][c] * vs[c][e];
                acc[t] = a;
            }
        }
    }
    if (i < L) {
        float inv = 1.0f / l;
        for (int t = 0; t < DPT; t++) {
            int e = part + t * TPR;
            if (e < HEAD_DIM) out[(ulong(i) * Hq + hq) * HEAD_DIM + e] = acc[t] * inv;
        }
    }
}
