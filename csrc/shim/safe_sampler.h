// libllama's samplers can throw C++ exceptions through its C API (a grammar asked to accept a
// token it does not allow: "Unexpected empty grammar stack after accepting piece"), which would
// abort the process. These wrappers catch them; Cython turns the message into SamplerError.
#pragma once
#include <string>

#include "llama.h"

// Each returns 0 on success, 1 with the exception's message in `err`.
int pyo_sampler_accept(llama_sampler * smpl, llama_token token, std::string & err);
int pyo_sampler_apply(llama_sampler * smpl, llama_token_data_array * cur_p, std::string & err);
int pyo_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx, llama_token * out, std::string & err);
