#include "memplan.h"

#include "fit.h"          // common/fit.h: upstream's planner (what llama-server's --fit uses)
#include "llama-ext.h"    // src/llama-ext.h: llama_get_memory_breakdown (staging API)
#include "log.h"          // common/log.h

#include <cstdio>
#include <exception>
#include <vector>

namespace {

// The planner reports through common's logger, which prints on its own thread straight to the
// terminal. Keep warnings and errors (a failed fit says why), drop its per-attempt info lines.
void quiet_common_log() {
    if (common_log_get_verbosity_thold() > LOG_LEVEL_WARN) {
        common_log_set_verbosity_thold(LOG_LEVEL_WARN);
    }
}

void add(pyollama_device_usage & u, size_t model, size_t context, size_t compute) {
    u.model += model;
    u.context += context;
    u.compute += compute;
}

}  // namespace

extern "C" int pyollama_device_memory(const char * path, const llama_model_params * mparams,
                                      const llama_context_params * cparams, pyollama_device_usage * out,
                                      int cap, uint32_t * n_layer, uint32_t * n_ctx_train, char * err,
                                      size_t err_len) {
    quiet_common_log();
    try {
        std::vector<ggml_backend_dev_t> devs;
        uint32_t ngl = 0, nctx = 0, nexp = 0;
        common_device_memory_data_vec v = common_get_device_memory_data(
            path, mparams, cparams, devs, ngl, nctx, nexp, GGML_LOG_LEVEL_ERROR);
        int n = 0;
        for (size_t i = 0; i < v.size() && n < cap; i++, n++) {
            out[n].dev = i < devs.size() ? devs[i] : nullptr;   // the last entry is the host
            out[n].total = v[i].total;
            out[n].free = v[i].free;
            out[n].model = v[i].model;
            out[n].context = v[i].context;
            out[n].compute = v[i].compute;
        }
        *n_layer = ngl;
        *n_ctx_train = nctx;
        return n;
    } catch (const std::exception & e) {
        std::snprintf(err, err_len, "%s", e.what());
        return -1;
    }
}

extern "C" int pyollama_context_memory(const llama_context * ctx, pyollama_device_usage * out, int cap) {
    if (cap < 1) {
        return 0;
    }
    int n = 1;   // out[0] is the host until the end
    out[0] = pyollama_device_usage{nullptr, 0, 0, 0, 0, 0};
    for (const auto & [buft, mb] : llama_get_memory_breakdown(ctx)) {
        if (ggml_backend_buft_is_host(buft)) {
            add(out[0], mb.model, mb.context, mb.compute);
            continue;
        }
        ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
        int i = 1;
        while (i < n && out[i].dev != dev) {
            i++;
        }
        if (i == n) {
            if (n == cap) {
                continue;
            }
            out[n++] = pyollama_device_usage{dev, 0, 0, 0, 0, 0};
        }
        add(out[i], mb.model, mb.context, mb.compute);
    }
    // devices first, host last (as pyollama_device_memory orders them)
    pyollama_device_usage host = out[0];
    for (int i = 1; i < n; i++) {
        out[i - 1] = out[i];
    }
    out[n - 1] = host;
    return n;
}

extern "C" int pyollama_fit_params(const char * path, llama_model_params * mparams,
                                   llama_context_params * cparams, float * tensor_split,
                                   llama_model_tensor_buft_override * overrides, size_t * margins,
                                   uint32_t n_ctx_min, int log_level) {
    quiet_common_log();
    try {
        return (int) common_fit_params(path, mparams, cparams, tensor_split, overrides, margins, n_ctx_min,
                                       nullptr, (ggml_log_level) log_level);
    } catch (const std::exception &) {
        return (int) COMMON_PARAMS_FIT_STATUS_ERROR;
    }
}

extern "C" size_t pyollama_max_devices(void) {
    return llama_max_devices();
}

extern "C" size_t pyollama_max_overrides(void) {
    return llama_max_tensor_buft_overrides();
}
