#include "safe_sampler.h"

#include <exception>

int pyo_sampler_accept(llama_sampler * smpl, llama_token token, std::string & err) {
    try {
        llama_sampler_accept(smpl, token);
        return 0;
    } catch (const std::exception & e) {
        err = e.what();
        return 1;
    }
}

int pyo_sampler_apply(llama_sampler * smpl, llama_token_data_array * cur_p, std::string & err) {
    try {
        llama_sampler_apply(smpl, cur_p);
        return 0;
    } catch (const std::exception & e) {
        err = e.what();
        return 1;
    }
}

int pyo_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx, llama_token * out, std::string & err) {
    try {
        *out = llama_sampler_sample(smpl, ctx, idx);
        return 0;
    } catch (const std::exception & e) {
        err = e.what();
        return 1;
    }
}
