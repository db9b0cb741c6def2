// Kernels for the runtime's own tests and benchmarks (kernels/*_test.go).
// extern "C" keeps the names unmangled, so Module.Kernel finds them.

extern "C" __global__ void empty_kernel() {}

// One float4 (16 bytes) per thread: the widest plain load and store.
extern "C" __global__ void copy_f4(float4* __restrict__ dst, const float4* __restrict__ src,
                                   unsigned long long n4) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n4) dst[i] = src[i];
}

// Writes back the bits of each scalar argument, to check how they travel.
extern "C" __global__ void echo_args(unsigned int* out, int a, unsigned int b, float c,
                                     long long d, unsigned long long e) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    out[0] = (unsigned int)a;
    out[1] = b;
    out[2] = __float_as_uint(c);
    out[3] = (unsigned int)((unsigned long long)d);
    out[4] = (unsigned int)((unsigned long long)d >> 32);
    out[5] = (unsigned int)e;
    out[6] = (unsigned int)(e >> 32);
}

extern "C" __global__ void echo_f64(unsigned long long* out, double x) {
    if (blockIdx.x == 0 && threadIdx.x == 0) out[0] = (unsigned long long)__double_as_longlong(x);
}

// out[i] = i over a 2-D grid of 1-D blocks.
extern "C" __global__ void iota2d(float* out, unsigned int n) {
    unsigned int i = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (float)i;
}

// Reverses each block-sized tile through dynamic shared memory (n is a
// multiple of the block size).
extern "C" __global__ void reverse_tiles(float* out, const float* in) {
    extern __shared__ float tile[];
    unsigned int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    tile[t] = in[base + t];
    __syncthreads();
    out[base + t] = tile[blockDim.x - 1 - t];
}

// reverse_tiles with 8 KB of static shared memory besides the dynamic:
// both count against CUDA's 48 KiB default, so a launch whose dynamic
// part alone is below it may still need the limit raised.
extern "C" __global__ void reverse_tiles_static(float* out, const float* in) {
    __shared__ float pad[2048];
    extern __shared__ float tile[];
    unsigned int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    tile[t] = in[base + t];
    pad[t] = in[base + t];
    __syncthreads();
    out[base + t] = pad[t] == in[base + t] ? tile[blockDim.x - 1 - t] : -1.0f;
}

// Adds 1 to every element: for the leak and concurrency tests.
extern "C" __global__ void add_one(float* x, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}
