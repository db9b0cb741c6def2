// The Week 3 model runner's own kernels on an Apple GPU (Metal Shading
// Language, compiled at run time): the same kernels and layouts as
// runner.cu. Argument i of Device.Launch is [[buffer(i)]], scalars as
// constant references.
#include <metal_stdlib>
using namespace metal;

// Metal compiles with fast math, which may assume that no value is
// infinite: "nothing seen yet" is the finite NEG.
#define NEG (-1e30f)

kernel void paged_qkv(device float* q [[buffer(0)]], device float* kp [[buffer(1)]], device float* vp [[buffer(2)]],
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
        device float* dst = hh < Hq ? q + (ulong(r) * Hq + hh) * D : kp + (ulong(s) * H + (hh - Hq)) * D;
        dst[i] = y0;
        dst[i + half_d] = y1;
    } else {
        device float* dst = vp + (ulong(s) * H + (hh - Hq - H)) * D;
        dst[i] = x0;
        dst[i + half_d] = x1;
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
    if (tid == 0) next[tg.x] = si[0] < n ? si[0] : 0;
}
