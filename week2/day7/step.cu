// Week 2 Day 7: the kernels the whole model needs beyond Days 4-6, on an
// NVIDIA GPU. Everything a decode step must change from one step to the next
// (the token, the position) is read from device memory, never passed as a
// launch argument, so that the step can be captured once as a CUDA graph and
// replayed unchanged.
//
//   tokens  int32 [rows]               token ids of this pass
//   pos     int32 [1]                  positions cached before this pass
//   h       float32 [rows][E]          hidden states
//   qkv     float32 [rows][(Hq+2H)·D]  the fused q/k/v projection, biases not yet added
//   q       float32 [rows][Hq·D]       rotated queries, token-major
//   k, v    float32 [H][cap][D]        the layer's cache, head-major
//   gu      float32 [rows][2·I]        the fused gate/up projection
//
// The launch prepends #define HEAD_DIM (D) for the attention kernels.

#define LOG2E 1.4426950408889634f
#ifndef INFINITY  // NVRTC compiles without the C headers
#define INFINITY __int_as_float(0x7f800000)
#endif

// A bf16 is the top half of a float: widening is a shift.
__device__ __forceinline__ float bf16f(unsigned short b) { return __uint_as_float(((unsigned int)b) << 16); }

// h[r] = table[tokens[r]], bf16 rows widened. Grid (ceil(E/block), rows).
extern "C" __global__ void embed_bf16(float* __restrict__ h, const unsigned short* __restrict__ table,
                                      const int* __restrict__ tokens, int rows, int E) {
    int r = blockIdx.y, e = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows || e >= E) return;
    h[(size_t)r * E + e] = bf16f(table[(size_t)tokens[r] * E + e]);
}

// h[r] = the 4-bit row tokens[r] dequantized: scale·q + bias per group,
// eight values a word, low nibble first. Grid (ceil(E/block), rows).
extern "C" __global__ void embed_q4(float* __restrict__ h, const unsigned int* __restrict__ words,
                                    const unsigned short* __restrict__ scales, const unsigned short* __restrict__ biases,
                                    const int* __restrict__ tokens, int rows, int E, int group) {
    int r = blockIdx.y, e = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows || e >= E) return;
    size_t tok = (size_t)tokens[r];
    unsigned int w = words[tok * (E / 8) + e / 8];
    float q = (float)((w >> (4 * (e % 8))) & 15u);
    size_t g = tok * (E / group) + e / group;
    h[(size_t)r * E + e] = q * bf16f(scales[g]) + bf16f(biases[g]);
}

// The q/k/v epilogue, one thread per pair (i, i + D/2) of one head of one
// row, the heads counted q, then k, then v: add the biases, rotate q and k
// (RoPE, half-split form) at position pos[0] + r, write q to its buffer and
// k and v straight into the cache at that position.
extern "C" __global__ void qkv_post(float* __restrict__ q, float* __restrict__ kc, float* __restrict__ vc,
                                    const float* __restrict__ qkv, const float* __restrict__ bias,
                                    const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                                    const int* __restrict__ pos, int rows, int Hq, int H, int D, int cap, int max_pos) {
    const int half = D / 2, heads = Hq + 2 * H;
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)rows * heads * half) return;
    int i = (int)(t % half), hh = (int)((t / half) % heads), r = (int)(t / ((long long)half * heads));
    int p = pos[0] + r;
    if (p < 0 || p >= cap || p >= max_pos) return;  // the host checks first; never write outside
    const float* row = qkv + (size_t)r * heads * D;
    int col = hh * D + i;
    float x0 = row[col] + bias[col], x1 = row[col + half] + bias[col + half];
    if (hh < Hq + H) {
        float c = cos_t[(size_t)p * half + i], s = sin_t[(size_t)p * half + i];
        float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
        if (hh < Hq) {
            float* qr = q + (size_t)r * Hq * D + (size_t)hh * D;
            qr[i] = y0;
            qr[i + half] = y1;
        } else {
            float* kr = kc + ((size_t)(hh - Hq) * cap + p) * D;
            kr[i] = y0;
            kr[i + half] = y1;
        }
    } else {
        float* vr = vc + ((size_t)(hh - Hq - H) * cap + p) * D;
        vr[i] = x0;
        vr[i + half] = x1;
    }
}

// out[r][i] = silu(gu[r][i]) · gu[r][I + i], one thread per output.
extern "C" __global__ void swiglu_pair(float* __restrict__ out, const float* __restrict__ gu, int rows, int I) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)rows * I) return;
    int r = (int)(t / I), i = (int)(t % I);
    float g = gu[(size_t)r * 2 * I + i], u = gu[(size_t)r * 2 * I + I + i];
    out[t] = g / (1.0f + expf(-g)) * u;
}

// Greedy choice on the device, one block of 1024 threads: token[0] becomes
// the index of the largest logit (the first one on a tie, as the CPU's
// argmax), and pos[0] advances by `advance`, the rows this pass added to
// the cache. A decode step then copies back one int32, not the logits.
extern "C" __global__ void __launch_bounds__(1024) argmax_advance(int* __restrict__ token, int* __restrict__ pos,
                                                                  const float* __restrict__ logits, int n, int advance) {
    __shared__ float sv[1024];
    __shared__ int si[1024];
    float best = -INFINITY;
    int bi = n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float x = logits[i];
        if (bi == n || x > best) {  // strictly greater: a thread keeps the first of equal values
            best = x;
            bi = i;
        }
    }
    sv[threadIdx.x] = best;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float o = sv[threadIdx.x + s];
            int oi = si[threadIdx.x + s];
            if (o > sv[threadIdx.x] || (o == sv[threadIdx.x] && oi < si[threadIdx.x])) {
                sv[threadIdx.x] = o;
                si[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        token[0] = si[0] < n ? si[0] : 0;
        pos[0] += advance;
    }
}

// The token the step just chose, copied into slot i of a history, so that
// the host can queue several decode steps back to back and read their
// choices together (GPUModel.DecodeAhead). One thread.
extern "C" __global__ void record_token(int* __restrict__ hist, const int* __restrict__ token, int i) {
    if (threadIdx.x == 0 && blockIdx.x == 0) hist[i] = token[0];
}

#ifdef HEAD_DIM
// Decode attention whose length comes from device memory (pos[0] + 1 keys:
// the new one is already in the cache), for the captured step. Grid
// (splits, Hq), 128 threads: block (s, hq) takes the s-th of `splits` equal
// ranges of the keys for query head hq, each of its 4 warps every 4th key of
// the range, one lane per 32nd feature; a warp keeps an online softmax
// (running maximum m and sum l, base 2), the block merges its warps and
// writes its range's state. A range with no key writes m = -inf, l = 0.
#define PERL ((HEAD_DIM + 31) / 32)
extern "C" __global__ void __launch_bounds__(128) attention_graph_split(
        float* __restrict__ part_o, float* __restrict__ part_ml, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, const int* __restrict__ pos,
        int cap, int group, float scale) {
    const int split = blockIdx.x, hq = blockIdx.y, splits = gridDim.x;
    const int h = hq / group, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int S = pos[0] + 1;
    const int chunk = (S + splits - 1) / splits;
    const int j0 = split * chunk, j1 = min(j0 + chunk, S);
    float qr[PERL], acc[PERL];
#pragma unroll
    for (int p = 0; p < PERL; p++) {
        int e = lane + 32 * p;
        qr[p] = e < HEAD_DIM ? q[(size_t)hq * HEAD_DIM + e] * scale * LOG2E : 0.f;
        acc[p] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const float* kh = k + (size_t)h * cap * HEAD_DIM;
    const float* vh = v + (size_t)h * cap * HEAD_DIM;
    for (int j = j0 + warp; j < j1; j += 4) {
        float d = 0.f;
#pragma unroll
        for (int p = 0; p < PERL; p++) {
            int e = lane + 32 * p;
            if (e < HEAD_DIM) d += qr[p] * kh[(size_t)j * HEAD_DIM + e];
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
        float mn = fmaxf(m, d);
        float corr = exp2f(m - mn), pj = exp2f(d - mn);
        l = l * corr + pj;
#pragma unroll
        for (int p = 0; p < PERL; p++) {
            int e = lane + 32 * p;
            if (e < HEAD_DIM) acc[p] = acc[p] * corr + pj * vh[(size_t)j * HEAD_DIM + e];
        }
        m = mn;
    }
    __shared__ float sm[4], sl[4], so[4][HEAD_DIM];
#pragma unroll
    for (int p = 0; p < PERL; p++) {
        int e = lane + 32 * p;
        if (e < HEAD_DIM) so[warp][e] = acc[p];
    }
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    __syncthreads();
    float M = fmaxf(fmaxf(sm[0], sm[1]), fmaxf(sm[2], sm[3]));
    for (int e = threadIdx.x; e < HEAD_DIM; e += blockDim.x) {
        float o = 0.f, sum = 0.f;
        for (int w = 0; w < 4; w++) {
            float c = sm[w] == -INFINITY ? 0.f : exp2f(sm[w] - M);
            o += so[w][e] * c;
            sum += sl[w] * c;
        }
        size_t at = (size_t)hq * splits + split;
        part_o[at * HEAD_DIM + e] = o;
        if (e == 0) {
            part_ml[at * 2] = M;
            part_ml[at * 2 + 1] = sum;
        }
    }
}

// One block per query head merges the ranges: out = Σ o_s·2^(m_s - M) / Σ l_s·2^(m_s - M).
extern "C" __global__ void attention_graph_reduce(float* __restrict__ out, const float* __restrict__ part_o,
                                                  const float* __restrict__ part_ml, int splits) {
    const int hq = blockIdx.x;
    const float* ml = part_ml + (size_t)hq * splits * 2;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, ml[2 * s]);
    for (int e = threadIdx.x; e < HEAD_DIM; e += blockDim.x) {
        float o = 0.f, sum = 0.f;
        for (int s = 0; s < splits; s++) {
            float c = ml[2 * s] == -INFINITY ? 0.f : exp2f(ml[2 * s] - M);
            o += part_o[((size_t)hq * splits + s) * HEAD_DIM + e] * c;
            sum += ml[2 * s + 1] * c;
        }
        out[(size_t)hq * HEAD_DIM + e] = o / sum;
    }
}
#endif
