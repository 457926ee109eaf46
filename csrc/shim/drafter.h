// Self-speculative drafting (n-gram lookup in each sequence's own history) through upstream's
// common/speculative.h. One drafter serves every slot of a context; it keeps each sequence's token
// history so a draft costs no copy of the prompt. C++ exceptions stop here: Cython sees return codes.
#pragma once
#include "llama.h"

#include <cstddef>
#include <cstdint>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pyollama_drafter pyollama_drafter;

// `types`: comma-separated upstream names (ngram-simple, ngram-map-k, ngram-map-k4v, ngram-mod), tried in
// upstream's order of preference. size_n: the n-gram looked up; size_m: the longest draft; min_hits: how
// often a key must have been seen. NULL with a message in `err` when upstream refuses the configuration.
pyollama_drafter * pyollama_drafter_new(const char * types, uint32_t n_seq, uint16_t size_n, uint16_t size_m,
                                        uint16_t min_hits, char * err, size_t err_len);
void pyollama_drafter_free(pyollama_drafter * d);

// A new generation in `seq`: its history becomes the prompt.
int pyollama_drafter_begin(pyollama_drafter * d, int32_t seq, const llama_token * tokens, size_t n);
// Tokens the sequence kept (accepted), appended to its history.
int pyollama_drafter_push(pyollama_drafter * d, int32_t seq, const llama_token * tokens, size_t n);
// A draft of at most `n_max` tokens to follow `last` (sampled, not yet in the history). Returns its length
// (0: no draft), -1 on error.
int pyollama_drafter_draft(pyollama_drafter * d, int32_t seq, llama_token last, int32_t n_max,
                           llama_token * out, int32_t cap);
// How many tokens of the last draft the target accepted; -1 (not upstream's abort) when that is more
// than the last draft held.
int pyollama_drafter_accept(pyollama_drafter * d, int32_t seq, uint16_t n_accepted);

#ifdef __cplusplus
}
#endif
