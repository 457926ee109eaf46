#include "pick.h"

#include <math.h>
#include <stdlib.h>

// One wheel runs on every x86-64: GCC picks the widest clone the CPU supports at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PYO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PYO_CLONES
#endif

// Max of n floats ignoring NaN; "omp simd reduction" lets the compiler use vector max
// instructions without -ffast-math (the comparison order does not change a max).
PYO_CLONES static float block_max(const float * x, int32_t n) {
    float m = -INFINITY;
#pragma omp simd reduction(max:m)
    for (int32_t i = 0; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

int32_t pyo_argmax(const float * x, int32_t n) {
    if (n <= 0) {
        return 0;
    }
    const float m = block_max(x, n);
    for (int32_t i = 0; i < n; i++) {
        if (x[i] == m) {
            return i;
        }
    }
    return 0;   // every logit is NaN
}

static void sift_down(pyo_token_data * h, int32_t k, int32_t j, pyo_token_data v) {
    for (;;) {
        int32_t c = 2 * j + 1;
        if (c >= k) break;
        if (c + 1 < k && h[c + 1].logit < h[c].logit) c++;
        if (h[c].logit >= v.logit) break;
        h[j] = h[c];
        j = c;
    }
    h[j] = v;
}

static void sift_up(pyo_token_data * h, int32_t j, pyo_token_data v) {
    while (j > 0 && h[(j - 1) / 2].logit > v.logit) {
        h[j] = h[(j - 1) / 2];
        j = (j - 1) / 2;
    }
    h[j] = v;
}

static int by_logit_desc(const void * a, const void * b) {
    const pyo_token_data * x = a;
    const pyo_token_data * y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);   // equal logits: lower id first, like argmax
}

#define BLOCK 64

int32_t pyo_top_k(const float * x, int32_t n, int32_t k, pyo_token_data * out) {
    if (k > n) k = n;
    if (k <= 0) return 0;
    int32_t size = 0;
    // A min-heap of the best k so far. Once it is full, a whole block whose maximum does not beat
    // the heap's minimum is skipped with one vector pass: almost every block, for k << n.
    for (int32_t start = 0; start < n; start += BLOCK) {
        const int32_t end = start + BLOCK < n ? start + BLOCK : n;
        if (size == k && !(block_max(x + start, end - start) > out[0].logit)) {
            continue;
        }
        for (int32_t i = start; i < end; i++) {
            const float v = x[i];
            if (size < k) {
                if (v == v) {   // skip NaN
                    pyo_token_data d = { i, v, 0.0f };
                    sift_up(out, size++, d);
                }
            } else if (v > out[0].logit) {
                pyo_token_data d = { i, v, 0.0f };
                sift_down(out, k, 0, d);
            }
        }
    }
    qsort(out, (size_t) size, sizeof(pyo_token_data), by_logit_desc);
    return size;
}
