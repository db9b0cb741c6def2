// Week 2 Day 7: the kernels the whole model needs beyond Days 4-6, on an
// Apple GPU (Metal Shading Language, compiled at run time). Argument i of
// Device.Launch is [[buffer(i)]], scalars as constant references. The same
// kernels as step.cu, with the same layouts: what changes from one decode
// step to the next (token, position) is read from device memory, so the
// recorded step replays unchanged.
//
// The launch prepends #define HEAD_DIM (D) for the attention kernels.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG, as in Day 6's kernels.
#define NEG (-1e30f)

static inline float bf16f(ushort b) { return as_type<float>(uint(b) << 16); }

kernel void embed_bf16(device float* h [[buffer(0)]], const device ushort* table [[buffer(1)]],
                       const device int* tokens [[buffer(2)]], constant int& rows [[buffer(3)]],
                       constant int& E [[buffer(4)]], uint3 tg [[threadgroup_position_in_grid]],
                       uint3 tid [[thread_position_in_threadgroup]], uint3 nt [[threads_per_threadgroup]]) {
    int r = int(tg.y), e = int(tg.x * nt.x + tid.x);
    if (r >= rows || e >= E) return;
    h[ulong(r) * E + e] = bf16f(table[ulong(tokens[r]) * E + e]);
}

kernel void embed_q4(device float* h [[buffer(0)]], const device uint* words [[buffer(1)]],
                     const device ushort* scales [[buffer(2)]], const device ushort* biases [[buffer(3)]],
                     const device int* tokens [[buffer(4)]], constant int& rows [[buffer(5)]],
                     constant int& E [[buffer(6)]], constant int& group [[buffer(7)]],
                     uint3 tg [[threadgroup_position_in_grid]], uint3 tid [[thread_position_in_threadgroup]],
                     uint3 nt [[threads_per_threadgroup]]) {
    int r = int(tg.y), e = int(tg.x * nt.x + tid.x);
    if (r >= rows || e >= E) return;
    ulong tok = ulong(tokens[r]);
    uint w = words[tok * ulong(E / 8) + ulong(e / 8)];
    float q = float((w >> (4 * (e % 8))) & 15u);
    ulong g = tok * ulong(E / group) + ulong(e / group);
    h[ulong(r) * E + e] = q * bf16f(scales[g]) + bf16f(biases[g]);
}

kernel void qkv_post(device float* q [[buffer(0)]], device float* kc [[buffer(1)]], device float* vc [[buffer(2)]],
                     const device float* qkv [[buffer(3)]], const device float* bias [[buffer(4)]],
                     const device float* cos_t [[buffer(5)]], const device float* sin_t [[buffer(6)]],
                     const device int* pos [[buffer(7)]], constant int& rows [[buffer(8)]],
                     constant int& Hq [[buffer(9)]], constant int& H [[buffer(10)]], constant int& D [[buffer(11)]],
                     constant int& cap [[buffer(12)]], constant int& max_pos [[buffer(13)]],
                     uint t [[thread_position_in_grid]]) {
    const int half_d = D / 2, heads = Hq + 2 * H;
    if (ulong(t) >= ulong(rows) * ulong(heads) * ulong(half_d)) return;
    int i = int(t % uint(half_d)), hh = int((t / uint(half_d)) % uint(heads)), r = int(t / (uint(half_d) * uint(heads)));
    int p = pos[0] + r;
    if (p < 0 || p >= cap || p >= max_pos) return;
    const device float* row = qkv + ulong(r) * ulong(heads * D);
    int col = hh * D + i;
    float x0 = row[col] + bias[col], x1 = row[col + half_d] + bias[col + half_d];
    if (hh < Hq + H) {
        float c = cos_t[ulong(p) * half_d + i], s = sin_t[ulong(p) * half_d + i];
        float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
        if (hh < Hq) {
            device float* qr = q + ulong(r) * ulong(Hq * D) + ulong(hh * D);
            qr[i] = y0;
            qr[i + half_d] = y1;
        } else {
            device float* kr = kc + (ulong(hh - Hq) * cap + p) * D;
            kr[i] = y0;
            kr[i + half_d] = y1;
        }
    } else {
        device float* vr = vc + (ulong(hh - Hq - H) * cap + p) * D;
        vr[i] = x0;
        vr[i + half_d] = x1;
    }
}

kernel void swiglu_pair(device float* out [[buffer(0)]], const device float* gu [[buffer(1)]],
                        constant int& rows [[buffer(2)]], constant int& I [[buffer(3)]],
                        uint t [[thread_position_in_grid]]) {
    if (ulong(t) >= ulong(rows) * ulong(I)) return;
    int r = int(t / uint(I)), i = int(t % uint(I));
    float g = gu[ulong(r) * 2 * I + i], u = gu[ulong(r) * 2 * I + I + i];
    out[t] = g / (1.0f + exp(-g)) * u;
}

// One threadgroup of 1024 threads (the host launches it so).
// The token the step just chose, copied into slot i of a history (as
// step.cu's record_token). One thread.
kernel void record_token(device int* hist [[buffer(0)]], const device int* token [[buffer(1)]],
                         constant int& i [[buffer(2)]], uint tid [[thread_position_in_grid]]) {
    if (tid == 0) hist[i] = token[0];
}

kernel void argmax_advance(device int* token [[buffer(0)]], device int* pos [[buffer(1)]],
                           const device float* logits [[buffer(2)]], constant int& n [[buffer(3)]],
                           constant int& advance [[buffer(4)]], uint tid [[thread_index_in_threadgroup]],
                           uint nt [[threads_per_threadgroup]]) {
    threadgroup float sv[1024];
    threadgroup int si[1024];
    float best = NEG;
    int bi = n;
    for (int i = int(tid); i < n; i += int(nt)) {
        float x = logits[i];
        if (bi == n || x > best) {
            best = x;
            bi = i;
        }
    }
    sv[tid] = best;
    si[tid] = bi;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = nt / 2; s > 0; s >>= 1) {
        if (tid < s) {
            float o = sv[tid + s];
            int oi = si[tid + s];
            if (o > sv[tid] || (o == sv[tid] && oi < si[tid])) {
                sv[tid] = o;
                si[tid] = oi;
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0) {
        token[0] = si[0] < n ? si[0] : 0;
        pos[0] += advance;
    }
}

#ifdef HEAD_DIM
#define PERL ((HEAD_DIM + 31) / 32)
// Threadgroups of 128 threads = 4 SIMD groups of 32 (Apple GPUs' width).
kernel void attention_graph_split(device float* part_o [[buffer(0)]], device float* part_ml [[buffer(1)]],
                                  const device float* q [[buffer(2)]], const device float* k [[buffer(3)]],
                                  const device float* v [[buffer(4)]], const device int* pos [[buffer(5)]],
                                  constant int& cap [[buffer(6)]], constant int& group [[buffer(7)]],
                                  constant float& scale [[buffer(8)]], uint3 tg [[threadgroup_position_in_grid]],
                                  uint3 ntg [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]]) {
    threadgroup float sm[4], sl[4], so[4][HEAD_DIM];
    const int split = int(tg.x), hq = int(tg.y), splits = int(ntg.x);
    const int h = hq / group, lane = int(tid % 32), warp = int(tid / 32);
    const int S = pos[0] + 1;
    const int chunk = (S + splits - 1) / splits;
    const int j0 = split * chunk, j1 = min(j0 + chunk, S);
    float qr[PERL], acc[PERL];
    for (int p = 0; p < PERL; p++) {
        int e = lane + 32 * p;
        qr[p] = e < HEAD_DIM ? q[ulong(hq) * HEAD_DIM + e] * scale * LOG2E : 0.f;
        acc[p] = 0.f;
    }
    float m = NEG, l = 0.f;
    const device float* kh = k + ulong(h) * ulong(cap) * HEAD_DIM;
    const device float* vh = v + ulong(h) * ulong(cap) * HEAD_DIM;
    for (int j = j0 + warp; j < j1; j += 4) {
        float d = 0.f;
        for (int p = 0; p < PERL; p++) {
            int e = lane + 32 * p;
            if (e < HEAD_DIM) d += qr[p] * kh[ulong(j) * HEAD_DIM + e];
        }
        d = simd_sum(d);
        float mn = max(m, d);
        float corr = exp2(m - mn), pj = exp2(d - mn);
        l = l * corr + pj;
        for (int p = 0; p < PERL; p++) {
            int e = lane + 32 * p;
            if (e < HEAD_DIM) acc[p] = acc[p] * corr + pj * vh[ulong(j) * HEAD_DIM + e];
        }
        m = mn;
    }
    for (int p = 0; p < PERL; p++) {
        int e = lane + 32 * p;
        if (e < HEAD_DIM) so[warp][e] = acc[p];
    }
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float M = max(max(sm[0], sm[1]), max(sm[2], sm[3]));
    for (int e = int(tid); e < HEAD_DIM; e += 128) {
        float o = 0.f, sum = 0.f;
        for (int w = 0; w < 4; w++) {
            float c = sm[w] == NEG ? 0.f : exp2(sm[w] - M);
            o += so[w][e] * c;
            sum += sl[w] * c;
        }
        ulong at = ulong(hq) * ulong(splits) + ulong(split);
        part_o[at * HEAD_DIM + e] = o;
        if (e == 0) {
            part_ml[at * 2] = M;
            part_ml[at * 2 + 1] = sum;
        }
    }
}

kernel void attention_graph_reduce(device float* out [[buffer(0)]], const device float* part_o [[buffer(1)]],
                                   const device float* part_ml [[buffer(2)]], constant int& splits [[buffer(3)]],
                                   uint hq [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                                   uint nt [[threads_per_threadgroup]]) {
    const device float* ml = part_ml + ulong(hq) * ulong(splits) * 2;
    float M = NEG;
    for (int s = 0; s < splits; s++) M = max(M, ml[2 * s]);
    for (int e = int(tid); e < HEAD_DIM; e += int(nt)) {
        float o = 0.f, sum = 0.f;
        for (int s = 0; s < splits; s++) {
            float c = ml[2 * s] == NEG ? 0.f : exp2(ml[2 * s] - M);
            o += part_o[(ulong(hq) * ulong(splits) + ulong(s)) * HEAD_DIM + e] * c;
            sum += ml[2 * s + 1] * c;
        }
        out[ulong(hq) * HEAD_DIM + e] = o / sum;
    }
}
#endif
