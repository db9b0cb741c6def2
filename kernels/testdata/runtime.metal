// Kernels for the runtime's own tests and benchmarks (kernels/*_test.go),
// the Metal twins of runtime.cu: argument i of Device.Launch is [[buffer(i)]].
#include <metal_stdlib>
using namespace metal;

kernel void empty_kernel() {}

kernel void copy_f4(device float4* dst [[buffer(0)]], const device float4* src [[buffer(1)]],
                    constant ulong& n4 [[buffer(2)]], uint i [[thread_position_in_grid]]) {
    if (i < n4) dst[i] = src[i];
}

kernel void echo_args(device uint* out [[buffer(0)]], constant int& a [[buffer(1)]],
                      constant uint& b [[buffer(2)]], constant float& c [[buffer(3)]],
                      constant long& d [[buffer(4)]], constant ulong& e [[buffer(5)]],
                      uint i [[thread_position_in_grid]]) {
    if (i != 0) return;
    out[0] = as_type<uint>(a);
    out[1] = b;
    out[2] = as_type<uint>(c);
    out[3] = uint(as_type<ulong>(d));
    out[4] = uint(as_type<ulong>(d) >> 32);
    out[5] = uint(e);
    out[6] = uint(e >> 32);
}

kernel void iota2d(device float* out [[buffer(0)]], constant uint& n [[buffer(1)]],
                   uint3 tg [[threadgroup_position_in_grid]], uint3 ngroups [[threadgroups_per_grid]],
                   uint3 tpg [[threads_per_threadgroup]], uint3 t [[thread_position_in_threadgroup]]) {
    uint i = (tg.y * ngroups.x + tg.x) * tpg.x + t.x;
    if (i < n) out[i] = float(i);
}

kernel void reverse_tiles(device float* out [[buffer(0)]], const device float* in [[buffer(1)]],
                          threadgroup float* tile [[threadgroup(0)]],
                          uint t [[thread_position_in_threadgroup]], uint g [[threadgroup_position_in_grid]],
                          uint n [[threads_per_threadgroup]]) {
    uint base = g * n;
    tile[t] = in[base + t];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[base + t] = tile[n - 1 - t];
}

kernel void add_one(device float* x [[buffer(0)]], constant uint& n [[buffer(1)]],
                    uint i [[thread_position_in_grid]]) {
    if (i < n) x[i] += 1.0f;
}
