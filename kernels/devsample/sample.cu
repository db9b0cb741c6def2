// Week 1's sampler on the device: temperature, top-k, top-p and the draw,
// one block of 1024 threads per row of logits, so that a sampled decode step
// copies back one token id instead of the whole row.
//
// The filters keep exactly the tokens the CPU sampler keeps. Tokens are
// ranked by a 64-bit key: the logit's bits, made to order as unsigned
// integers, above the complement of the id, so that a larger key is a larger
// logit and, between equal logits, the lower id (the CPU's stable sort). The
// K-th largest key and the top-p cutoff are found by radix selection: eight
// passes at most, each a histogram of the next 8 bits of the keys that share
// the bits chosen so far, stopping as soon as the chosen bin holds one key.
// Probabilities are exp(x/T − max/T) in float, summed in 64-bit fixed point
// (the histograms) or double (the draw); the CPU's are double throughout,
// so the two can part only where a sum lands within about 1e-7 of a
// boundary.
//
// The random stream is Go's math/rand/v2 PCG (128-bit state, DXSM output)
// seeded as Week 1's NewSampler seeds it, and each call draws one Float64,
// as Sampler.Sample does: with the same seed and the same logits the device
// picks the token the CPU picks, except where two sums that differ in their
// last bits fall on either side of a boundary.

typedef unsigned long long u64;

#define SAMPLE_THREADS 1024

// Loads in flight per thread. One block reads a whole row (600 KB for
// Qwen2's vocabulary), so its passes are bound by the latency of the loads
// unless each thread issues several before it uses the first.
#define AHEAD 16

// xs[v] = x[first + v·step] for v < AHEAD, 0 from end on: the loads issued
// together, before any is used.
__device__ __forceinline__ void load_ahead(float (&xs)[AHEAD], const float* __restrict__ x, int first, int step,
                                           int end) {
#pragma unroll
    for (int v = 0; v < AHEAD; v++) {
        const int j = first + v * step;
        xs[v] = j < end ? x[j] : 0.0f;
    }
}

// The ranking key of logit x at id i.
__device__ __forceinline__ u64 sample_key(float x, int i) {
    unsigned int b = __float_as_uint(x);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((u64)b << 32) | (u64)(0xFFFFFFFFu - (unsigned int)i);
}

__device__ __forceinline__ int key_id(u64 k) { return (int)(0xFFFFFFFFu - (unsigned int)(k & 0xFFFFFFFFu)); }

// One Float64 from Go's PCG: st[0] is the state's high word, st[1] the low.
__device__ double pcg_float64(u64* st) {
    const u64 mulHi = 2549297995355413924ull, mulLo = 4865540595714422341ull;
    const u64 incHi = 6364136223846793005ull, incLo = 1442695040888963407ull;
    u64 hi = st[0], lo = st[1];
    u64 nhi = __umul64hi(lo, mulLo) + hi * mulLo + lo * mulHi;
    u64 nlo = lo * mulLo;
    u64 sum = nlo + incLo;
    nhi += incHi + (sum < nlo ? 1ull : 0ull);
    st[0] = nhi;
    st[1] = sum;
    u64 r = nhi;
    r ^= r >> 32;
    r *= 0xda942042e4dd58b5ull;
    r ^= r >> 48;
    r *= (sum | 1ull);
    return (double)(r << 11 >> 11) / 9007199254740992.0;  // 2^53
}

__device__ __forceinline__ u64 block_max_u64(u64 v, u64* red) {
    for (int o = 16; o > 0; o >>= 1) {
        u64 w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0ull;
        for (int o = 16; o > 0; o >>= 1) {
            u64 w = __shfl_xor_sync(0xffffffffu, v, o);
            v = w > v ? w : v;
        }
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    return red[0];
}

__device__ __forceinline__ double block_sum(double v, double* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    return red[0];
}

struct SelectShared {
    unsigned int cnt[256];
    u64 mass[256];  // fixed point: MASS_ONE a probability equal to the largest one
    u64 prefix, result;
    int done;
};

// Probabilities relative to the largest one, as fixed point for the
// histogram's integer atomics: 2^40 units for the largest, so that a row of
// 2^20 tokens sums without overflow and each token is rounded by 1e-12 of
// the largest probability at most.
#define MASS_ONE 1099511627776.0

// The probability of logit xi relative to the largest one (mT is the
// largest logit over T), in float: the CPU's is exp(x/T − max/T) in double,
// and the two differ in their last float bits.
__device__ __forceinline__ float rel_prob(float xi, float invT, float mT) { return expf(xi * invT - mT); }

// The 64-bit sum of v over the warp's lanes (all lanes call it).
__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Radix selection: among the tokens whose key is at least lo, ranked by key
// from the largest, the key of the first one at which the running weight
// (1 a token when mass is false, its probability when true) reaches target
// (in the same units). Returns the smallest key to keep: every key at least
// the returned one is kept. When the weights never reach target (rounding),
// every key from lo on is kept.
//
// Many tokens fall in the same bin, so the lanes of a warp that share a bin
// count themselves (__match_any_sync) and one of them adds the count; a
// warp whose lanes all share one bin also adds their probabilities first.
// Atomics on one address from every lane of every warp would queue behind
// each other.
__device__ u64 select_key(const float* __restrict__ x, int n, float invT, float mT, u64 lo, double target, bool mass,
                          SelectShared* sh) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    u64 prefix = 0;
    double above = 0.0;  // thread 0's: the weight of the bins above the chosen ones
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) {
            sh->cnt[b] = 0;
            sh->mass[b] = 0;
        }
        __syncthreads();
        const u64 high = shift == 56 ? 0ull : (~0ull << (shift + 8));
        for (int b = warp * 32 + lane; b - lane < n; b += AHEAD * warps * 32) {
            float xs[AHEAD];
            load_ahead(xs, x, b, warps * 32, n);
#pragma unroll
            for (int v = 0; v < AHEAD; v++) {
                const int i = b + v * warps * 32;
                bool in = false;
                int d = 0;
                if (i < n) {
                    u64 k = sample_key(xs[v], i);
                    in = k >= lo && (k & high) == prefix;
                    d = (int)((k >> shift) & 255);
                }
                // The lanes that share this lane's bin; lanes not in the
                // selection form a group of their own (bin 256).
                const unsigned int group = __match_any_sync(0xffffffffu, in ? d : 256);
                if (in && lane == __ffs(group) - 1) atomicAdd(&sh->cnt[d], (unsigned int)__popc(group));
                if (mass) {
                    const u64 q = in ? (u64)((double)rel_prob(xs[v], invT, mT) * MASS_ONE + 0.5) : 0ull;
                    if (group == 0xffffffffu) {  // the whole warp in one bin: one atomic, not 32 in a queue
                        const u64 sum = warp_sum_u64(q);
                        if (in && lane == 0) atomicAdd(&sh->mass[d], sum);
                    } else if (in) {
                        atomicAdd(&sh->mass[d], q);
                    }
                }
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int found = -1;
            for (int d = 255; d >= 0; d--) {
                double w = mass ? (double)sh->mass[d] : (double)sh->cnt[d];
                if (sh->cnt[d] != 0 && above + w >= target) {
                    found = d;
                    break;
                }
                above += w;
            }
            if (found < 0) {
                sh->done = 1;
                sh->result = lo;
            } else {
                prefix |= (u64)found << shift;
                sh->prefix = prefix;
                sh->done = sh->cnt[found] == 1 || shift == 0;
                sh->result = prefix > lo ? prefix : lo;
            }
        }
        __syncthreads();
        if (sh->done) return sh->result;
        prefix = sh->prefix;
    }
    return sh->result;  // not reached: the last pass always ends
}

// sample_rows: grid (rows), SAMPLE_THREADS threads. Block b draws from row
// lrow[b] of logits (n values a row) with the settings and random state of
// sampler row r = prow[b]: temperature prm[2r], top-p prm[2r + 1], top-k
// topk[r] (0 keeps all; a temperature of 0 or less is the argmax), state
// state[2r], state[2r + 1], advanced by one draw. The token goes to
// token[lrow[b]]. Block 0 moves pos[0] on by advance (the rows the pass
// added to the cache), as the greedy argmax kernels do.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_rows(
        int* __restrict__ token, int* __restrict__ pos, int advance, const float* __restrict__ logits, int n,
        const int* __restrict__ lrow, const int* __restrict__ prow, const float* __restrict__ prm,
        const int* __restrict__ topk, u64* __restrict__ state) {
    __shared__ u64 redk[32];
    __shared__ double redd[32];
    __shared__ SelectShared sh;
    __shared__ double s_u;
    __shared__ int s_pick;
    const int row = prow[blockIdx.x], out = lrow[blockIdx.x];
    const float* x = logits + (size_t)out * n;
    const double T = (double)prm[2 * row];
    const double P = (double)prm[2 * row + 1];
    const int K = topk[row];
    if (threadIdx.x == 0) {
        s_u = pcg_float64(state + 2 * row);
        s_pick = -1;
    }
    u64 best = 0;
    for (int b = threadIdx.x; b < n; b += AHEAD * blockDim.x) {
        float xs[AHEAD];
        load_ahead(xs, x, b, blockDim.x, n);
#pragma unroll
        for (int v = 0; v < AHEAD; v++) {
            const int i = b + v * blockDim.x;
            const u64 k = i < n ? sample_key(xs[v], i) : 0ull;
            best = k > best ? k : best;
        }
    }
    best = block_max_u64(best, redk);
    const int top = key_id(best);
    if (T <= 0.0 || K == 1) {
        if (threadIdx.x == 0) {
            token[out] = top;
            if (blockIdx.x == 0 && advance != 0) pos[0] += advance;
        }
        return;
    }
    const float invT = (float)(1.0 / T), mT = x[top] * invT;

    u64 lo = 0;  // keep the tokens whose key is at least lo
    if (K > 0 && K < n) lo = select_key(x, n, invT, mT, 0, (double)K, false, &sh);
    if (P > 0.0 && P < 1.0) {
        u64 z = 0;
        for (int b = threadIdx.x; b < n; b += AHEAD * blockDim.x) {
            float xs[AHEAD];
            load_ahead(xs, x, b, blockDim.x, n);
#pragma unroll
            for (int v = 0; v < AHEAD; v++) {
                const int i = b + v * blockDim.x;
                if (i < n && sample_key(xs[v], i) >= lo) z += (u64)((double)rel_prob(xs[v], invT, mT) * MASS_ONE + 0.5);
            }
        }
        const double total = block_sum((double)z, redd);
        lo = select_key(x, n, invT, mT, lo, P * total, true, &sh);
    }

    // The draw, in id order as the CPU's: warp w sums the kept
    // probabilities of its own run of ids, a scan over the warps places the
    // runs, and the warp whose run holds u times the total walks it 32 ids
    // at a time.
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const int run = (n + warps - 1) / warps;
    const int i0 = min(n, warp * run), i1 = min(n, i0 + run);
    double mine = 0.0;
    for (int b = i0 + lane; b < i1; b += AHEAD * 32) {
        float xs[AHEAD];
        load_ahead(xs, x, b, 32, i1);
#pragma unroll
        for (int v = 0; v < AHEAD; v++) {
            const int i = b + v * 32;
            if (i < i1 && sample_key(xs[v], i) >= lo) mine += (double)rel_prob(xs[v], invT, mT);
        }
    }
    for (int o = 16; o > 0; o >>= 1) mine += __shfl_xor_sync(0xffffffffu, mine, o);
    // Thread w of warp 0 gathers warp w's sum; the exclusive scan and the
    // total come back to every thread.
    __syncthreads();
    if (lane == 0) redd[warp] = mine;
    __syncthreads();
    double before = 0.0, total = 0.0;
    for (int w = 0; w < warps; w++) {
        const double v = redd[w];
        if (w < warp) before += v;
        total += v;
    }
    const double t = s_u * total;
    if (t >= before && t < before + mine) {
        double cum = before;
        int pick = -1;
        for (int b = i0 + lane; b - lane < i1 && pick < 0; b += AHEAD * 32) {
            float xs[AHEAD];
            load_ahead(xs, x, b, 32, i1);
#pragma unroll
            for (int v = 0; v < AHEAD; v++) {
                const int i = b + v * 32;
                const double w = i < i1 && sample_key(xs[v], i) >= lo ? (double)rel_prob(xs[v], invT, mT) : 0.0;
                double inc = w;  // inclusive scan over the warp's 32 ids
                for (int o = 1; o < 32; o <<= 1) {
                    const double u = __shfl_up_sync(0xffffffffu, inc, o);
                    if (lane >= o) inc += u;
                }
                const unsigned int hit = __ballot_sync(0xffffffffu, w > 0.0 && t < cum + inc);
                if (hit != 0 && pick < 0) pick = b - lane + v * 32 + __ffs(hit) - 1;
                cum += __shfl_sync(0xffffffffu, inc, 31);
            }
        }
        if (lane == 0 && pick >= 0) s_pick = pick;  // one warp's run holds t
    }
    // u·total past the last sum (rounding): the CPU takes the last kept id.
    u64 lastKey = 0;
    for (int b = threadIdx.x; b < n; b += AHEAD * blockDim.x) {
        float xs[AHEAD];
        load_ahead(xs, x, b, blockDim.x, n);
#pragma unroll
        for (int v = 0; v < AHEAD; v++) {
            const int i = b + v * blockDim.x;
            if (i < n && sample_key(xs[v], i) >= lo) lastKey = (u64)(i + 1);
        }
    }
    lastKey = block_max_u64(lastKey, redk);
    if (threadIdx.x == 0) {
        token[out] = s_pick >= 0 ? s_pick : (int)lastKey - 1;
        if (blockIdx.x == 0 && advance != 0) pos[0] += advance;
    }
}
