// Week 1 Day 7, Task 2: y = a*x + b*y on an Apple GPU (Metal Shading
// Language, compiled at run time by newLibraryWithSource). Argument i of
// Device.Launch arrives at [[buffer(i)]]: scalars as constant references.
//
// The launch runs threadgroups of threads, like CUDA's blocks; Metal hands
// each thread its global index directly as [[thread_position_in_grid]].
// The last threadgroup may stick out past n: those threads must not touch
// memory.
#include <metal_stdlib>
using namespace metal;

kernel void axpby(constant float& a [[buffer(0)]],
                  const device float* x [[buffer(1)]],
                  constant float& b [[buffer(2)]],
                  device float* y [[buffer(3)]],
                  constant uint& n [[buffer(4)]],
                  uint i [[thread_position_in_grid]]) {
    // Your code here (W1D7).
}
