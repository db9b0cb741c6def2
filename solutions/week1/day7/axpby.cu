// Week 1 Day 7, Task 2: y = a*x + b*y on an NVIDIA GPU (CUDA C++, compiled
// at run time by NVRTC). extern "C" keeps the name "axpby" unmangled so that
// Module.Kernel("axpby") finds it.
//
// The launch runs gridDim.x blocks of blockDim.x threads. Each thread handles
// one element: its global index is blockIdx.x * blockDim.x + threadIdx.x.
// The last block may stick out past n: those threads must not touch memory.
extern "C" __global__ void axpby(float a, const float* __restrict__ x, float b,
                                 float* __restrict__ y, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] + b * y[i];
    }
}
