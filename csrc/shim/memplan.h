// Memory planning through upstream's own planner (common/fit.h) and allocation accounting
// (llama_get_memory_breakdown). C++ exceptions stop here: Cython sees return codes.
#pragma once
#include "llama.h"

#include <cstddef>
#include <cstdint>

#ifdef __cplusplus
extern "C" {
#endif

// Bytes one device holds (or would hold) for a model + context. dev == NULL: system memory (host).
typedef struct pyollama_device_usage {
    ggml_backend_dev_t dev;
    int64_t total;     // device memory, bytes (0 when unknown)
    int64_t free;
    size_t model;      // weights
    size_t context;    // KV cache / recurrent state
    size_t compute;    // compute buffers
} pyollama_device_usage;

// What loading `path` with these params would allocate per device, measured by upstream with a
// no_alloc load (nothing is read but the header; nothing is allocated). Entries: the model's
// devices in order, then the host. Returns the entry count, or -1 with a message in `err`.
int pyollama_device_memory(const char * path, const llama_model_params * mparams,
                           const llama_context_params * cparams, pyollama_device_usage * out, int cap,
                           uint32_t * n_layer, uint32_t * n_ctx_train, char * err, size_t err_len);

// What a live context has allocated, per device (the host last). Returns the entry count.
int pyollama_context_memory(const llama_context * ctx, pyollama_device_usage * out, int cap);

// common_fit_params: fit n_gpu_layers / tensor_split / overrides (and n_ctx when 0) to free device
// memory minus `margins` (one per device, bytes). 0 fitted, 1 could not fit, 2 error.
int pyollama_fit_params(const char * path, llama_model_params * mparams, llama_context_params * cparams,
                        float * tensor_split, llama_model_tensor_buft_override * overrides,
                        size_t * margins, uint32_t n_ctx_min, int log_level);

// How many devices / overrides the buffers passed to pyollama_fit_params must hold.
size_t pyollama_max_devices(void);
size_t pyollama_max_overrides(void);

#ifdef __cplusplus
}
#endif
