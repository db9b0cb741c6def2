// The Week 3 model runner's own kernels on an Apple GPU (Metal Shading
// Language, compiled at run time): the kernels of runner.cu with the same
// arguments and layouts (argument i at [[buffer(i)]], scalars as constant
// references). The launch prepends #define GROUP and #define HEAD_DIM.
//
// paged_attention_bf16 here is the scalar form of Week 3 Day 4's
// paged.metal over bf16 pages (one SIMD group per key, an online softmax
// per head), split over ranges of keys as on CUDA; the CUDA kernel's
// tensor-core form would use simdgroup matrices.
//
// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG.
#include <metal_stdlib>
using namespace metal;

#define LOG2E 1.4426950408889634f
#define NEG (-1e30f)

static inline float bf16f(ushort b) { return as_type<float>(uint(b) << 16); }

// Round to nearest even, as runner.cu's f2bf.
static inline ushort f2bf(float f) {
    uint u = as_type<uint>(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return ushort(u >> 16);
}

kernel void paged_qkv(device float* q [[buffer(0)]], device ushort* kp [[buffer(1)]], device ushort* vp [[buffer(2)]],
                      const device float* qkv [[buffer(3)]], const device float* bias [[buffer(4)]],
                      const device float* cos_t [[buffer(5)]], const device float* sin_t [[buffer(6)]],
                      const device int* pos [[buffer(7)]], const device int* slot [[buffer(8)]],
                      constant int& rows [[buffer(9)]], constant int& Hq [[buffer(10)]], constant int& H [[buffer(11)]],
                      constant int& D [[buffer(12)]], constant int& max_pos [[buffer(13)]], constant int& slots [[buffer(14)]],
                      uint t [[thread_position_in_grid]]) {
    const int half_d = D / 2, heads = Hq + 2 * H;
    if (ulong(t) >= ulong(rows) * ulong(heads) * ulong(half_d)) return;
    int i = int(t % uint(half_d)), hh = int((t / uint(half_d)) % uint(heads)), r = int(t / (uint(half_d) * uint(heads)));
    int p = pos[r], s = slot[r];
    if (p < 0 || p >= max_pos || s < 0 || s >= slots) return;
    const device float* row = qkv + ulong(r) * ulong(heads * D);
    int col = hh * D + i;
    float x0 = row[col] + bias[col], x1 = row[col + half_d] + bias[col + half_d];
    if (hh < Hq + H) {
        float c = cos_t[ulong(p) * half_d + i], sn = sin_t[ulong(p) * half_d + i];
        float y0 = x0 * c - x1 * sn, y1 = x0 * sn + x1 * c;
        if (hh < Hq) {
            device float* dst = q + (ulong(r) * Hq + hh) * D;
            dst[i] = y0;
            dst[i + half_d] = y1;
        } else {
            device ushort* dst = kp + (ulong(s) * H + (hh - Hq)) * D;
            dst[i] = f2bf(y0);
            dst[i + half_d] = f2bf(y1);
        }
    } else {
        device ushort* dst = vp + (ulong(s) * H + (hh - Hq - H)) * D;
        dst[i] = f2bf(x0);
        dst[i + half_d] = f2bf(x1);
    }
}

kernel void gather_rows(device float* out [[buffer(0)]], const device float* x [[buffer(1)]],
                        const device int* idx [[buffer(2)]], constant int& n [[buffer(3)]], constant int& cols [[buffer(4)]],
                        uint3 tg [[threadgroup_position_in_grid]], uint3 tid [[thread_position_in_threadgroup]],
                        uint3 nt [[threads_per_threadgroup]]) {
    int j = int(tg.y), c = int(tg.x * nt.x + tid.x);
    if (j >= n || c >= cols) return;
    out[ulong(j) * cols + c] = x[ulong(idx[j]) * cols + c];
}

kernel void argmax_rows(device int* next [[buffer(0)]], const device float* logits [[buffer(1)]],
                        constant int& n [[buffer(2)]], uint3 tg [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]], uint nt [[threads_per_threadgroup]]) {
    threadgroup float sv[1024];
    threadgroup int si[1024];
    const device float* row = logits + ulong(tg.x) * ulong(n);
    float best = NEG;
    int bi = n;
    for (int i = int(tid); i < n; i += int(nt)) {
        float x = row[i];
        if (bi == n || x > best) {  // strictly greater: a thread keeps the first of equal values
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
    if (tid == 0) next[tg.x] = si[0] < n ? si[0] : 0;
}

#if defined(GROUP) && defined(HEAD_DIM)
#define PER ((HEAD_DIM + 31) / 32)  // features per lane
#define SIMDS 4                     // SIMD groups per threadgroup, one softmax state each
#define TILE 128                    // the unit of a split: runner.cu's keys a block takes per round

kernel void paged_attention_bf16(device float* out [[buffer(0)]], device float* part [[buffer(1)]],
                                 const device float* q [[buffer(2)]], const device ushort* k [[buffer(3)]],
                                 const device ushort* v [[buffer(4)]], const device int* tables [[buffer(5)]],
                                 const device int* info [[buffer(6)]], const device int* row_seq [[buffer(7)]],
                                 constant int& width [[buffer(8)]], constant int& page_size [[buffer(9)]],
                                 constant float& scale [[buffer(10)]],
                                 uint3 tg [[threadgroup_position_in_grid]], uint3 ntg [[threadgroups_per_grid]],
                                 uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
    const int row = int(tg.x), h = int(tg.y), H = int(ntg.y), Hq = H * GROUP;
    const int z = int(tg.z), splits = int(ntg.z);
    const int s = row_seq[row];
    const int context = info[s * 3], first = info[s * 3 + 2];
    const int visible = context + (row - first) + 1;
    const device int* table = tables + ulong(s) * width;
    const int tiles = (visible + TILE - 1) / TILE, per = (tiles + splits - 1) / splits;
    const int jbeg = min(visible, z * per * TILE), jend = min(visible, (z + 1) * per * TILE);

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
    for (int j = jbeg + int(sg); j < jend; j += SIMDS) {
        const int page = table[j / page_size], slot = j % page_size;
        const ulong at = ((ulong(page) * page_size + slot) * H + h) * HEAD_DIM;
        float kk[PER], vv[PER];
        for (int p = 0; p < PER; p++) {
            int e = p * 32 + int(lane);
            kk[p] = e < HEAD_DIM ? bf16f(k[at + e]) : 0.0f;
            vv[p] = e < HEAD_DIM ? bf16f(v[at + e]) : 0.0f;
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
        const ulong hq = ulong(row) * Hq + h * GROUP + g;
        if (splits == 1) {
            out[hq * HEAD_DIM + e] = o / sum;
        } else {
            device float* pz = part + (hq * splits + z) * (HEAD_DIM + 2);
            pz[e] = o;
            if (e == 0) {
                pz[HEAD_DIM] = M;
                pz[HEAD_DIM + 1] = sum;
            }
        }
    }
}

kernel void paged_attention_merge(device float* out [[buffer(0)]], const device float* part [[buffer(1)]],
                                  constant int& splits [[buffer(2)]], uint3 tg [[threadgroup_position_in_grid]],
                                  uint3 ntg [[threadgroups_per_grid]], uint d [[thread_index_in_threadgroup]]) {
    const ulong hq = ulong(tg.x) * ntg.y + tg.y;
    const device float* p = part + hq * splits * (HEAD_DIM + 2);
    float mx = NEG;
    for (int z = 0; z < splits; z++) mx = max(mx, p[z * (HEAD_DIM + 2) + HEAD_DIM]);
    float o = 0.0f, sum = 0.0f;
    for (int z = 0; z < splits; z++) {
        const device float* pz = p + z * (HEAD_DIM + 2);
        float w = pz[HEAD_DIM] <= NEG ? 0.0f : exp2(pz[HEAD_DIM] - mx);
        o += pz[d] * w;
        sum += pz[HEAD_DIM + 1] * w;
    }
    out[hq * HEAD_DIM + d] = o / sum;
}
#endif
