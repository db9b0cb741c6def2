// Week 3 Day 4: paged attention on an Apple GPU (Metal Shading Language).
// The same contract as paged.cu: arguments in the same order, argument i at
// [[buffer(i)]], scalars as constant references; the launch prepends
// #define GROUP and #define HEAD_DIM (<= 128). One threadgroup of 128
// threads per (query row, key/value head), grid (T, H).
//
//   q, out   float [T][Hq][D]          k, v  float [pages][page_size][H][D]
//   tables   int [num_seqs][width]     (padded with -1, never read there)
//   info     int [num_seqs][3]         context, query rows, first row
//   row_seq  int [T]
//
// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
#define NEG (-1e30f)
#define PER ((HEAD_DIM + 31) / 32)  // features per lane
#define SIMDS 4                     // SIMD groups per threadgroup, one softmax state each

kernel void paged_attention(device float* out [[buffer(0)]], const device float* q [[buffer(1)]],
                            const device float* k [[buffer(2)]], const device float* v [[buffer(3)]],
                            const device int* tables [[buffer(4)]], const device int* info [[buffer(5)]],
                            const device int* row_seq [[buffer(6)]], constant int& width [[buffer(7)]],
                            constant int& page_size [[buffer(8)]], constant float& scale [[buffer(9)]],
                            uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                            uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                            uint lane [[thread_index_in_simdgroup]]) {
    const int row = int(tg.x), h = int(tg.y), H = int(ntg.y), Hq = H * GROUP;
    const int s = row_seq[row];
    const int context = info[s * 3], first = info[s * 3 + 2];
    const int visible = context + (row - first) + 1;
    const device int* table = tables + ulong(s) * width;

    float qr[GROUP][PER], acc[GROUP][PER], m[GROUP], l[GROUP];
    const device float* qi = q + (ulong(row) * Hq + h * GROUP) * HEAD_DIM;
    for (int g = 0; g < GROUP; g++) {
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + int(lane);
            qr[g][p] = e < HEAD_DIM ? qi[g * HEAD_DIM + e] * scale * LOG2E : 0.0f;
            acc[g][p] = 0.0f;
        }
        m[g] = NEG;
        l[g] = 0.0f;
    }
    for (int j = int(sg); j < visible; j += SIMDS) {
        const int page = table[j / page_size], slot = j % page_size;
        const ulong at = ((ulong(page) * page_size + slot) * H + h) * HEAD_DIM;
        float kk[PER], vv[PER];
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + int(lane);
            kk[p] = e < HEAD_DIM ? k[at + e] : 0.0f;
            vv[p] = e < HEAD_DIM ? v[at + e] : 0.0f;
        }
        for (int g = 0; g < GROUP; g++) {
            float d = 0.0f;
            for (int p = 0; p < PER; p++) d += qr[g][p] * kk[p];
            float sc = max(simd_sum(d), NEG);
            float mx = max(m[g], sc);
            float corr = exp2(m[g] - mx), w = exp2(sc - mx);
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
            float c = sm[w][g][0] <= NEG ? 0.0f : exp2(sm[w][g][0] - M);  // a SIMD group that saw no key weighs 0
            o += so[w][g][e] * c;
            sum += sm[w][g][1] * c;
        }
        out[(ulong(row) * Hq + h * GROUP + g) * HEAD_DIM + e] = o / sum;
    }
}
