// Week 2 Day 6: flash-decoding on an Apple GPU (Metal Shading Language).
// The same contract as decode.cu: arguments in the same order, argument i at
// [[buffer(i)]], scalars as constant references; the launch prepends
// #define GROUP and #define HEAD_DIM (<= 128).
//
//   q       float [L][Hq][D]        k, v  float [H][cap][D]
//   mask    float [L][S]            part_o float [L][Hq][splits][D]
//   part_ml float [L][Hq][splits][2] (base-2 running maximum, sum)
//
// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG, and masks are clamped
// to it.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
#define NEG (-1e30f)
#define PER ((HEAD_DIM + 31) / 32)  // features per lane
#define SIMDS 4                     // SIMD groups per threadgroup, one softmax state each

kernel void attention_decode_split(device float* part_o [[buffer(0)]], device float* part_ml [[buffer(1)]],
                                   const device float* q [[buffer(2)]], const device float* k [[buffer(3)]],
                                   const device float* v [[buffer(4)]], const device float* mask [[buffer(5)]],
                                   constant int& L [[buffer(6)]], constant int& S [[buffer(7)]],
                                   constant int& cap [[buffer(8)]], constant int& chunk [[buffer(9)]],
                                   constant float& scale [[buffer(10)]], constant int& causal [[buffer(11)]],
                                   constant int& has_mask [[buffer(12)]],
                                   uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                                   uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                                   uint lane [[thread_index_in_simdgroup]]) {
    const int split = int(tg.x), h = int(tg.y), i = int(tg.z);
    const int splits = int(ntg.x), Hq = int(ntg.y) * GROUP;
    int j0 = split * chunk, j1 = min(j0 + chunk, S);
    if (causal != 0) j1 = min(j1, i + S - L + 1);

    float qr[GROUP][PER], acc[GROUP][PER], m[GROUP], l[GROUP];
    const device float* qi = q + (ulong(i) * Hq + h * GROUP) * HEAD_DIM;
    for (int g = 0; g < GROUP; g++) {
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + int(lane);
            qr[g][p] = e < HEAD_DIM ? qi[g * HEAD_DIM + e] * scale * LOG2E : 0.0f;
            acc[g][p] = 0.0f;
        }
        m[g] = NEG;
        l[g] = 0.0f;
    }
    const device float* kh = k + ulong(h) * cap * HEAD_DIM;
    const device float* vh = v + ulong(h) * cap * HEAD_DIM;
    for (int j = j0 + int(sg); j < j1; j += SIMDS) {
        float kk[PER], vv[PER];
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + int(lane);
            kk[p] = e < HEAD_DIM ? kh[ulong(j) * HEAD_DIM + e] : 0.0f;
            vv[p] = e < HEAD_DIM ? vh[ulong(j) * HEAD_DIM + e] : 0.0f;
        }
        float bias = has_mask != 0 ? max(mask[ulong(i) * S + j], NEG) * LOG2E : 0.0f;
        for (int g = 0; g < GROUP; g++) {
            float d = 0.0f;
            for (int p = 0; p < PER; p++) d += qr[g][p] * kk[p];
            float s = max(simd_sum(d) + bias, NEG);
            float mx = max(m[g], s);
            if (mx <= NEG) continue;
            float corr = exp2(m[g] - mx), w = exp2(s - mx);
            l[g] = l[g] * corr + w;
            for (int p = 0; p < PER; p++) acc[g][p] = acc[g][p] * corr + w * vv[p];
            m[g] = mx;
        }
    }

    threadgroup float sm[SIMDS][GROUP][2];
    threadgroup float so[SIMDS][GROUP][HEAD_DIM];
    for (int g = 0; g < GROUP; g++) {
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + int(lane);
            if (e < HEAD_DIM) so[sg][g][e] = acc[g][p];
        }
        if (lane == 0) {
            sm[sg][g][0] = m[g];
            sm[sg][g][1] = l[g];
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int t = int(tid); t < GROUP * HEAD_DIM; t += SIMDS * 32) {
        int g = t / HEAD_DIM, e = t % HEAD_DIM;
        float M = NEG;
        for (int w = 0; w < SIMDS; w++) M = max(M, sm[w][g][0]);
        float o = 0.0f, sum = 0.0f;
        for (int w = 0; w < SIMDS; w++) {
            float c = sm[w][g][0] <= NEG ? 0.0f : exp2(sm[w][g][0] - M);
            o += so[w][g][e] * c;
            sum += sm[w][g][1] * c;
        }
        ulong at = (ulong(i) * Hq + h * GROUP + g) * splits + split;
        part_o[at * HEAD_DIM + e] = o;
        if (e == 0) {
            part_ml[at * 2] = M;
            part_ml[at * 2 + 1] = sum;
        }
    }
}

kernel void attention_decode_reduce(device float* out [[buffer(0)]], const device float* part_o [[buffer(1)]],
                                    const device float* part_ml [[buffer(2)]], constant int& splits [[buffer(3)]],
                                    uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                                    uint tid [[thread_index_in_threadgroup]], uint nt [[threads_per_threadgroup]]) {
    const int hq = int(tg.x), i = int(tg.y), Hq = int(ntg.x);
    const ulong row = ulong(i) * Hq + hq;
    const device float* ml = part_ml + row * splits * 2;
    float M = NEG;
    for (int s = 0; s < splits; s++) M = max(M, ml[2 * s]);
    for (int e = int(tid); e < HEAD_DIM; e += int(nt)) {
        float o = 0.0f, sum = 0.0f;
        for (int s = 0; s < splits; s++) {
            float c = ml[2 * s] <= NEG ? 0.0f : exp2(ml[2 * s] - M);
            o += part_o[(row * splits + s) * HEAD_DIM + e] * c;
            sum += ml[2 * s + 1] * c;
        }
        out[row * HEAD_DIM + e] = o / sum;
    }
}
