// Rung 6 of the matrix product (CUDA, Hopper only): y = x·Wᵀ on the
// warpgroup matrix instructions, wgmma. Compiled for sm_90a, the
// architecture-specific target that has them; NewMatmul compiles this file
// only on a device of compute capability 9.0.
//
// Rung 5 feeds mma.sync: every warp first copies its fragments from shared
// memory into registers (ldmatrix), then multiplies 16 x 8 x 16 at a time.
// wgmma lets four warps together (a warpgroup, 128 threads) multiply a
// 64 x 128 x 16 product whose operands the tensor cores read straight from
// shared memory, described by a 64-bit descriptor, while the threads go on.
// The tiles in shared memory keep rung 5's layout: rows of 64 bf16 (128
// bytes), 16-byte chunk c of row r stored at chunk c ^ (r % 8). That is
// exactly the hardware's "128-byte swizzle", so the descriptor can say so
// and the loads (cp.async) stay as they were.
//
// A block of 256 threads (two warpgroups) computes a 128 x BN tile of y:
// warpgroup g takes rows 64g … 64g + 63 of the tile, all BN columns, in
// BN / 128 products of 64 x 128 (or one of 64 x 64 for BN 64). Its accumulators are 64 floats a thread
// per product, laid out as mma.sync's m16n8 fragments: warp w of the group
// holds rows 16w … 16w + 15, lane l rows l / 4 and l / 4 + 8, columns
// 2(l % 4) and 2(l % 4) + 1 of every 8.

#ifndef W6_STAGES
#define W6_STAGES 3  // slices of K in shared memory at once
#endif
// 1: each warpgroup leaves one slice's products running while it waits
// for the next slice (loads then run W6_STAGES - 2 slices ahead, not
// W6_STAGES - 1); 0: it waits for them at the end of every slice.
#ifndef W6_INFLIGHT
#define W6_INFLIGHT 0
#endif
#define W6_BK 64  // bf16 columns a slice: one 128-byte swizzle row

__device__ __forceinline__ unsigned int w6_smem(const void* p) {
    unsigned int r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }\n" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void w6_cp16(unsigned int dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}

// Queues the copies of slice k0 … k0 + 63 of rows r0 … r0 + rows - 1 of
// src (rows x K bf16, n rows in all) into shared memory at dst, swizzled;
// rows past n and columns from ke on are zeros.
template <int ROWS, int THREADS>
__device__ __forceinline__ void w6_load(unsigned int dst, const unsigned short* __restrict__ src, int n, int K,
                                        int r0, int k0, int ke) {
#pragma unroll
    for (int i = 0; i < ROWS * 8 / THREADS; i++) {
        int id = threadIdx.x + THREADS * i, r = id / 8, c = id % 8, k = k0 + c * 8, row = r0 + r;
        bool kin = k < ke;
        w6_cp16(dst + r * 128 + ((c ^ (r & 7)) << 4), src + (size_t)min(row, n - 1) * K + (kin ? k : 0),
                kin && row < n);
    }
}

// The shared-memory descriptor of a K-major operand in 128-byte swizzle:
// start address (16-byte units), the leading offset (unused by this
// layout, 1), the stride between groups of 8 rows (1024 bytes), and the
// swizzle mode (1: 128 bytes) in the top two bits. Tiles start on
// 1024-byte boundaries, so the base-offset field stays 0; the 16-column
// steps inside a slice move the start address by 32 bytes.
__device__ __forceinline__ unsigned long long w6_desc(unsigned int addr) {
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) | ((unsigned long long)(1024 >> 4) << 32) |
           (1ull << 62);
}

// d += A·Bᵀ for a 64 x 16 slice of A and a 128 x 16 slice of B.
__device__ __forceinline__ void w6_mma(float* d, unsigned long long da, unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db));
}

// d += A·Bᵀ for a 64 x 16 slice of A and a 64 x 16 slice of B.
__device__ __forceinline__ void w6_mma64(float* d, unsigned long long da, unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db));
}

template <int BM, int BN, int STAGES = W6_STAGES, int INFLIGHT = W6_INFLIGHT>
__device__ __forceinline__ void matmul_v6(float* __restrict__ y, const unsigned short* __restrict__ a,
                                          const unsigned short* __restrict__ w, int M, int N, int K, int kb, int ke) {
    constexpr int THREADS = BM * 2;               // a warpgroup of 128 per 64 rows
    constexpr int H = BN >= 128 ? BN / 128 : 1;   // 64 x 128 products a warpgroup (BN 64: one 64 x 64)
    constexpr int ACC = BN >= 128 ? 64 : 32;      // accumulators a thread a product
    constexpr int STAGE = (BM + BN) * W6_BK * 2;  // bytes: the slice of x, then of W
    constexpr int AHEAD = INFLIGHT ? STAGES - 2 : STAGES - 1;  // slices loaded ahead
    extern __shared__ unsigned char w6_raw[];
    const unsigned int base = (w6_smem(w6_raw) + 1023) & ~1023u;
    const int g = threadIdx.x / 128;
    // As in rung 5, grid X runs over the rows of x, so the blocks that
    // share a tile of W run together and read it once from device memory.
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int KT = (ke - kb + W6_BK - 1) / W6_BK;

    float d[H][ACC];
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int e = 0; e < ACC; e++) d[h][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < AHEAD; s++) {
        if (s < KT) {
            w6_load<BM, THREADS>(base + s * STAGE, a, M, K, m0, kb + s * W6_BK, ke);
            w6_load<BN, THREADS>(base + s * STAGE + BM * 128, w, N, K, n0, kb + s * W6_BK, ke);
        }
        asm volatile("cp.async.commit_group;\n" ::);
    }

    for (int kt = 0; kt < KT; kt++) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(AHEAD - 1));
        // cp.async writes through the ordinary (generic) path and wgmma
        // reads through the asynchronous one: this fence orders the two.
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        // Slice kt is in, and every warpgroup is done with the stage the
        // next load overwrites: slice kt - 1's (or, with products in
        // flight, kt - 2's, which the wait at the end of kt - 1 finished).
        __syncthreads();
        int nk = kt + AHEAD;
        if (nk < KT) {
            unsigned int s = base + (nk % STAGES) * STAGE;
            w6_load<BM, THREADS>(s, a, M, K, m0, kb + nk * W6_BK, ke);
            w6_load<BN, THREADS>(s + BM * 128, w, N, K, n0, kb + nk * W6_BK, ke);
        }
        asm volatile("cp.async.commit_group;\n" ::);
        const unsigned int sa = base + (kt % STAGES) * STAGE + g * 64 * 128, sb = base + (kt % STAGES) * STAGE + BM * 128;
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < W6_BK / 16; kk++)
#pragma unroll
            for (int h = 0; h < H; h++) {
                if (BN == 64)
                    w6_mma64(d[h], w6_desc(sa + 32 * kk), w6_desc(sb + 32 * kk));
                else
                    w6_mma(d[h], w6_desc(sa + 32 * kk), w6_desc(sb + h * 128 * 128 + 32 * kk));
            }
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        // Wait for the products (all of them, or all but this slice's)
        // before the next iteration's barrier lets a thread overwrite the
        // stage they read.
        asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(INFLIGHT) : "memory");
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    asm volatile("cp.async.wait_group 0;\n" ::);

    const int lane = threadIdx.x % 32, wr = (threadIdx.x % 128) / 32, q = lane % 4;
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int j = 0; j < ACC / 4; j++) {
            int n = n0 + 128 * h + 8 * j + 2 * q;
#pragma unroll
            for (int e = 0; e < 2; e++) {  // rows lane / 4 and lane / 4 + 8
                int m = m0 + 64 * g + 16 * wr + lane / 4 + 8 * e;
                if (m >= M) continue;
                float* yr = y + (size_t)m * N + n;
                if (n + 1 < N && (N % 2) == 0) {
                    *(float2*)yr = make_float2(d[h][4 * j + 2 * e], d[h][4 * j + 2 * e + 1]);
                } else {
                    if (n < N) yr[0] = d[h][4 * j + 2 * e];
                    if (n + 1 < N) yr[1] = d[h][4 * j + 2 * e + 1];
                }
            }
        }
}

extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v6(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v6<128, 128>(y, a, w, M, N, K, 0, K);
}

// 5 stages, one slice's products left in flight: 161 KB of shared memory,
// one block a multiprocessor. V6 takes it when the 128 x 128 tiles are
// fewer than the multiprocessors (Qwen2-7B's o and down projections in a
// prefill of 512), where no second block would hide a block's waits.
extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v6_deep(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v6<128, 128, 5, 1>(y, a, w, M, N, K, 0, K);
}

// 64 x 128 tiles, one warpgroup a block: twice the blocks, for products
// whose 128-row tiles leave multiprocessors idle.
extern "C" __global__ void __launch_bounds__(128) matmul_bf16_v6_m64(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v6<64, 128>(y, a, w, M, N, K, 0, K);
}

extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v6_n64(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v6<128, 64>(y, a, w, M, N, K, 0, K);
}

extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v6_n256(
        float* __restrict__ y, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K) {
    matmul_v6<128, 256>(y, a, w, M, N, K, 0, K);
}

// Split K, as rung 5's: block z sums columns z·kchunk … into its own
// M x N slice of part; matmul_sum_splits (matmul_fast.cu) adds the slices.
extern "C" __global__ void __launch_bounds__(256) matmul_bf16_v6_splitk(
        float* __restrict__ part, const unsigned short* __restrict__ a, const unsigned short* __restrict__ w,
        int M, int N, int K, int kchunk) {
    const int kb = blockIdx.z * kchunk;
    matmul_v6<128, 128>(part + (size_t)blockIdx.z * M * N, a, w, M, N, K, kb, min(K, kb + kchunk));
}
