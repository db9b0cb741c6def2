// Week 1's sampler on an Apple GPU: the kernel of sample.cu, with the same
// arguments ([[buffer(i)]] is Device.Launch's argument i) and the same keys,
// selection and random stream. Apple GPUs have no double precision, so the
// probabilities are float, and the selection's histogram adds them as fixed
// point (2^24 units a probability, two 32-bit words with a carry), since
// threadgroup atomics are integer ones. The reductions go through
// threadgroup memory, for any power-of-two threadgroup from 32 threads up.
#include <metal_stdlib>
using namespace metal;

#define MAXT 1024

static inline ulong sample_key(float x, int i) {
    uint b = as_type<uint>(x);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return (ulong(b) << 32) | ulong(0xFFFFFFFFu - uint(i));
}

static inline int key_id(ulong k) { return int(0xFFFFFFFFu - uint(k & 0xFFFFFFFFul)); }

// Go's PCG, one Float64 (as a float: a value of [0, 1)).
static inline float pcg_float(device ulong* st) {
    const ulong mulHi = 2549297995355413924ul, mulLo = 4865540595714422341ul;
    const ulong incHi = 6364136223846793005ul, incLo = 1442695040888963407ul;
    ulong hi = st[0], lo = st[1];
    ulong nhi = mulhi(lo, mulLo) + hi * mulLo + lo * mulHi;
    ulong nlo = lo * mulLo;
    ulong sum = nlo + incLo;
    nhi += incHi + (sum < nlo ? 1ul : 0ul);
    st[0] = nhi;
    st[1] = sum;
    ulong r = nhi;
    r ^= r >> 32;
    r *= 0xda942042e4dd58b5ul;
    r ^= r >> 48;
    r *= (sum | 1ul);
    // The top 24 of the 53 bits Go uses: a float holds no more.
    return float((r << 11 >> 11) >> 29) / 16777216.0f;
}

static inline ulong tg_max(ulong v, threadgroup ulong* red, uint tid, uint nt) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    red[tid] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = nt / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = max(red[tid], red[tid + s]);
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    return red[0];
}

static inline float tg_sum(float v, threadgroup float* red, uint tid, uint nt) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    red[tid] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = nt / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    return red[0];
}

// The sum of v over threads 0 … tid - 1.
static inline float tg_exclusive_scan(float v, threadgroup float* red, uint tid, uint nt) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    red[tid] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint o = 1; o < nt; o <<= 1) {
        float add = tid >= o ? red[tid - o] : 0.0f;
        threadgroup_barrier(mem_flags::mem_threadgroup);
        red[tid] += add;
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    return red[tid] - v;
}

struct SelectShared {
    atomic_uint cnt[256];
    atomic_uint lo[256], hi[256];  // fixed-point probability sums
    ulong prefix, result;
    int done;
};

// sample.cu's select_key: the smallest key to keep.
static ulong select_key(const device float* x, int n, float T, float mT, ulong lo, float target, bool mass,
                        threadgroup SelectShared& sh, uint tid, uint nt) {
    ulong prefix = 0;
    float above = 0.0f;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (uint b = tid; b < 256; b += nt) {
            atomic_store_explicit(&sh.cnt[b], 0u, memory_order_relaxed);
            atomic_store_explicit(&sh.lo[b], 0u, memory_order_relaxed);
            atomic_store_explicit(&sh.hi[b], 0u, memory_order_relaxed);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        const ulong high = shift == 56 ? 0ul : (~0ul << (shift + 8));
        for (int i = int(tid); i < n; i += int(nt)) {
            float xi = x[i];
            ulong k = sample_key(xi, i);
            if (k < lo || (k & high) != prefix) continue;
            uint d = uint((k >> shift) & 255ul);
            atomic_fetch_add_explicit(&sh.cnt[d], 1u, memory_order_relaxed);
            if (mass) {
                uint q = uint(exp(xi / T - mT) * 16777216.0f + 0.5f);
                uint old = atomic_fetch_add_explicit(&sh.lo[d], q, memory_order_relaxed);
                if (old + q < old) atomic_fetch_add_explicit(&sh.hi[d], 1u, memory_order_relaxed);
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (tid == 0) {
            int found = -1;
            for (int d = 255; d >= 0; d--) {
                uint c = atomic_load_explicit(&sh.cnt[d], memory_order_relaxed);
                float w = mass ? (float(atomic_load_explicit(&sh.hi[d], memory_order_relaxed)) * 4294967296.0f +
                                  float(atomic_load_explicit(&sh.lo[d], memory_order_relaxed))) / 16777216.0f
                               : float(c);
                if (c != 0 && above + w >= target) {
                    found = d;
                    break;
                }
                above += w;
            }
            if (found < 0) {
                sh.done = 1;
                sh.result = lo;
            } else {
                prefix |= ulong(found) << shift;
                sh.prefix = prefix;
                sh.done = atomic_load_explicit(&sh.cnt[found], memory_order_relaxed) == 1 || shift == 0;
                sh.result = prefix > lo ? prefix : lo;
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (sh.done) return sh.result;
        prefix = sh.prefix;
    }
    return sh.result;
}

kernel void sample_rows(device int* token [[buffer(0)]], device int* pos [[buffer(1)]],
                        constant int& advance [[buffer(2)]], const device float* logits [[buffer(3)]],
                        constant int& n [[buffer(4)]], const device int* lrow [[buffer(5)]],
                        const device int* prow [[buffer(6)]], const device float* prm [[buffer(7)]],
                        const device int* topk [[buffer(8)]], device ulong* state [[buffer(9)]],
                        uint b [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                        uint nt [[threads_per_threadgroup]]) {
    threadgroup ulong redk[MAXT];
    threadgroup float redf[MAXT];
    threadgroup SelectShared sh;
    threadgroup float s_u;
    threadgroup int s_pick;
    const int row = prow[b], out = lrow[b];
    const device float* x = logits + ulong(out) * ulong(n);
    const float T = prm[2 * row], P = prm[2 * row + 1];
    const int K = topk[row];
    if (tid == 0) {
        s_u = pcg_float(state + 2 * row);
        s_pick = -1;
    }
    ulong best = 0;
    for (int i = int(tid); i < n; i += int(nt)) best = max(best, sample_key(x[i], i));
    best = tg_max(best, redk, tid, nt);
    const int top = key_id(best);
    if (T <= 0.0f || K == 1) {
        if (tid == 0) {
            token[out] = top;
            if (b == 0 && advance != 0) pos[0] += advance;
        }
        return;
    }
    const float mT = x[top] / T;
    ulong lo = 0;
    if (K > 0 && K < n) lo = select_key(x, n, T, mT, 0, float(K), false, sh, tid, nt);
    if (P > 0.0f && P < 1.0f) {
        float z = 0.0f;
        for (int i = int(tid); i < n; i += int(nt)) {
            float xi = x[i];
            if (sample_key(xi, i) >= lo) z += exp(xi / T - mT);
        }
        z = tg_sum(z, redf, tid, nt);
        lo = select_key(x, n, T, mT, lo, P * z, true, sh, tid, nt);
    }
    const int run = (n + int(nt) - 1) / int(nt);
    const int i0 = min(n, int(tid) * run), i1 = min(n, i0 + run);
    float mine = 0.0f;
    int last = -1;
    for (int i = i0; i < i1; i++) {
        float xi = x[i];
        if (sample_key(xi, i) >= lo) {
            mine += exp(xi / T - mT);
            last = i;
        }
    }
    const float before = tg_exclusive_scan(mine, redf, tid, nt);
    const float total = tg_sum(mine, redf, tid, nt);
    const float t = s_u * total;
    if (mine > 0.0f && t >= before && t < before + mine) {
        float cum = before;
        int pick = last;
        for (int i = i0; i < i1; i++) {
            float xi = x[i];
            if (sample_key(xi, i) >= lo) {
                cum += exp(xi / T - mT);
                if (t < cum) {
                    pick = i;
                    break;
                }
            }
        }
        s_pick = pick;
    }
    ulong lastKey = last >= 0 ? ulong(last + 1) : 0ul;
    lastKey = tg_max(lastKey, redk, tid, nt);
    if (tid == 0) {
        token[out] = s_pick >= 0 ? s_pick : int(lastKey) - 1;
        if (b == 0 && advance != 0) pos[0] += advance;
    }
}
