// Token selection straight from raw logits, without building a candidate entry per vocabulary
// token: the greedy and top-k fast paths of the sampler (see sampler.pxi).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { int32_t id; float logit; float p; } pyo_token_data;   // layout of llama_token_data

// Index of the first maximum (NaN never wins, as in upstream's greedy sampler); 0 if n == 0.
int32_t pyo_argmax(const float * logits, int32_t n);

// The k largest logits into out[0..k), sorted by logit descending; returns how many were written.
int32_t pyo_top_k(const float * logits, int32_t n, int32_t k, pyo_token_data * out);

#ifdef __cplusplus
}
#endif
