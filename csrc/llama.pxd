# Mirror of the pinned include/llama.h (upstream 0c1e570), name for name, for what pyollama wraps.
# Enum values and struct fields are checked against the vendored header by
# tests/engine/test_api_drift.py: when the pin moves, that test says what drifted.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport FILE
from libcpp cimport bool as cbool
from ggml cimport (ggml_type, ggml_log_callback, ggml_abort_callback, ggml_numa_strategy,
                   ggml_backend_dev_t, ggml_backend_buffer_type_t, ggml_backend_sched_eval_callback,
                   ggml_threadpool_t, ggml_tensor)

cdef extern from "llama.h" nogil:
    int LLAMA_DEFAULT_SEED
    int LLAMA_TOKEN_NULL
    int LLAMA_STATE_SEQ_FLAGS_NONE
    int LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
    int LLAMA_STATE_SEQ_FLAGS_ON_DEVICE

    struct llama_vocab
    struct llama_model
    struct llama_context
    struct llama_memory_i
    ctypedef llama_memory_i * llama_memory_t
    struct llama_adapter_lora

    ctypedef int32_t llama_pos
    ctypedef int32_t llama_token
    ctypedef int32_t llama_seq_id
    ctypedef uint32_t llama_state_seq_flags

    cdef enum llama_vocab_type:
        LLAMA_VOCAB_TYPE_NONE = 0
        LLAMA_VOCAB_TYPE_SPM = 1
        LLAMA_VOCAB_TYPE_BPE = 2
        LLAMA_VOCAB_TYPE_WPM = 3
        LLAMA_VOCAB_TYPE_UGM = 4
        LLAMA_VOCAB_TYPE_RWKV = 5
        LLAMA_VOCAB_TYPE_PLAMO2 = 6
        LLAMA_VOCAB_TYPE_TEST = 7

    cdef enum llama_rope_type:
        LLAMA_ROPE_TYPE_NONE = -1
        LLAMA_ROPE_TYPE_NORM = 0
        LLAMA_ROPE_TYPE_NEOX
        LLAMA_ROPE_TYPE_MROPE
        LLAMA_ROPE_TYPE_IMROPE
        LLAMA_ROPE_TYPE_VISION

    cdef enum llama_token_attr:
        LLAMA_TOKEN_ATTR_UNDEFINED = 0
        LLAMA_TOKEN_ATTR_UNKNOWN = 1
        LLAMA_TOKEN_ATTR_UNUSED = 2
        LLAMA_TOKEN_ATTR_NORMAL = 4
        LLAMA_TOKEN_ATTR_CONTROL = 8
        LLAMA_TOKEN_ATTR_USER_DEFINED = 16
        LLAMA_TOKEN_ATTR_BYTE = 32
        LLAMA_TOKEN_ATTR_NORMALIZED = 64
        LLAMA_TOKEN_ATTR_LSTRIP = 128
        LLAMA_TOKEN_ATTR_RSTRIP = 256
        LLAMA_TOKEN_ATTR_SINGLE_WORD = 512

    cdef enum llama_ftype:
        LLAMA_FTYPE_ALL_F32 = 0
        LLAMA_FTYPE_MOSTLY_F16 = 1
        LLAMA_FTYPE_MOSTLY_Q4_0 = 2
        LLAMA_FTYPE_MOSTLY_Q4_1 = 3
        LLAMA_FTYPE_MOSTLY_Q8_0 = 7
        LLAMA_FTYPE_MOSTLY_Q5_0 = 8
        LLAMA_FTYPE_MOSTLY_Q5_1 = 9
        LLAMA_FTYPE_MOSTLY_Q2_K = 10
        LLAMA_FTYPE_MOSTLY_Q3_K_S = 11
        LLAMA_FTYPE_MOSTLY_Q3_K_M = 12
        LLAMA_FTYPE_MOSTLY_Q3_K_L = 13
        LLAMA_FTYPE_MOSTLY_Q4_K_S = 14
        LLAMA_FTYPE_MOSTLY_Q4_K_M = 15
        LLAMA_FTYPE_MOSTLY_Q5_K_S = 16
        LLAMA_FTYPE_MOSTLY_Q5_K_M = 17
        LLAMA_FTYPE_MOSTLY_Q6_K = 18
        LLAMA_FTYPE_MOSTLY_IQ2_XXS = 19
        LLAMA_FTYPE_MOSTLY_IQ2_XS = 20
        LLAMA_FTYPE_MOSTLY_Q2_K_S = 21
        LLAMA_FTYPE_MOSTLY_IQ3_XS = 22
        LLAMA_FTYPE_MOSTLY_IQ3_XXS = 23
        LLAMA_FTYPE_MOSTLY_IQ1_S = 24
        LLAMA_FTYPE_MOSTLY_IQ4_NL = 25
        LLAMA_FTYPE_MOSTLY_IQ3_S = 26
        LLAMA_FTYPE_MOSTLY_IQ3_M = 27
        LLAMA_FTYPE_MOSTLY_IQ2_S = 28
        LLAMA_FTYPE_MOSTLY_IQ2_M = 29
        LLAMA_FTYPE_MOSTLY_IQ4_XS = 30
        LLAMA_FTYPE_MOSTLY_IQ1_M = 31
        LLAMA_FTYPE_MOSTLY_BF16 = 32
        LLAMA_FTYPE_MOSTLY_TQ1_0 = 36
        LLAMA_FTYPE_MOSTLY_TQ2_0 = 37
        LLAMA_FTYPE_MOSTLY_MXFP4_MOE = 38
        LLAMA_FTYPE_MOSTLY_NVFP4 = 39
        LLAMA_FTYPE_MOSTLY_Q1_0 = 40
        LLAMA_FTYPE_MOSTLY_Q2_0 = 41
        LLAMA_FTYPE_GUESSED = 1024

    cdef enum llama_rope_scaling_type:
        LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED = -1
        LLAMA_ROPE_SCALING_TYPE_NONE = 0
        LLAMA_ROPE_SCALING_TYPE_LINEAR = 1
        LLAMA_ROPE_SCALING_TYPE_YARN = 2
        LLAMA_ROPE_SCALING_TYPE_LONGROPE = 3
        LLAMA_ROPE_SCALING_TYPE_MAX_VALUE = 3

    cdef enum llama_pooling_type:
        LLAMA_POOLING_TYPE_UNSPECIFIED = -1
        LLAMA_POOLING_TYPE_NONE = 0
        LLAMA_POOLING_TYPE_MEAN = 1
        LLAMA_POOLING_TYPE_CLS = 2
        LLAMA_POOLING_TYPE_LAST = 3
        LLAMA_POOLING_TYPE_RANK = 4

    cdef enum llama_attention_type:
        LLAMA_ATTENTION_TYPE_UNSPECIFIED = -1
        LLAMA_ATTENTION_TYPE_CAUSAL = 0
        LLAMA_ATTENTION_TYPE_NON_CAUSAL = 1

    cdef enum llama_flash_attn_type:
        LLAMA_FLASH_ATTN_TYPE_AUTO = -1
        LLAMA_FLASH_ATTN_TYPE_DISABLED = 0
        LLAMA_FLASH_ATTN_TYPE_ENABLED = 1

    cdef enum llama_split_mode:
        LLAMA_SPLIT_MODE_NONE = 0
        LLAMA_SPLIT_MODE_LAYER = 1
        LLAMA_SPLIT_MODE_ROW = 2
        LLAMA_SPLIT_MODE_TENSOR = 3

    cdef enum llama_load_mode:
        LLAMA_LOAD_MODE_AUTO = -1
        LLAMA_LOAD_MODE_NONE = 0
        LLAMA_LOAD_MODE_MMAP = 1
        LLAMA_LOAD_MODE_MLOCK = 2
        LLAMA_LOAD_MODE_MMAP_MLOCK = 3
        LLAMA_LOAD_MODE_DIRECT_IO = 4

    cdef enum llama_lazy_mode:
        LLAMA_LAZY_MODE_OFF = 0
        LLAMA_LAZY_MODE_AUTO = 1
        LLAMA_LAZY_MODE_ON = 2

    cdef enum llama_context_type:
        LLAMA_CONTEXT_TYPE_DEFAULT = 0
        LLAMA_CONTEXT_TYPE_MTP = 1

    ctypedef struct llama_token_data:
        llama_token id
        float logit
        float p

    ctypedef struct llama_token_data_array:
        llama_token_data * data
        size_t size
        int64_t selected
        bint sorted

    ctypedef cbool (*llama_progress_callback)(float progress, void * user_data) noexcept

    ctypedef struct llama_batch:
        int32_t n_tokens
        llama_token * token
        float * embd
        llama_pos * pos
        int32_t * n_seq_id
        llama_seq_id ** seq_id
        int8_t * logits

    cdef enum llama_model_kv_override_type:
        LLAMA_KV_OVERRIDE_TYPE_INT
        LLAMA_KV_OVERRIDE_TYPE_FLOAT
        LLAMA_KV_OVERRIDE_TYPE_BOOL
        LLAMA_KV_OVERRIDE_TYPE_STR

    struct llama_model_kv_override:
        llama_model_kv_override_type tag
        char key[128]
        int64_t val_i64
        double val_f64
        bint val_bool
        char val_str[128]

    struct llama_model_tensor_buft_override:
        const char * pattern
        ggml_backend_buffer_type_t buft

    struct llama_model_params:
        ggml_backend_dev_t * devices
        const llama_model_tensor_buft_override * tensor_buft_overrides
        int32_t n_gpu_layers
        llama_split_mode split_mode
        llama_load_mode load_mode
        llama_lazy_mode lazy_mode
        int32_t main_gpu
        const float * tensor_split
        llama_progress_callback progress_callback
        void * progress_callback_user_data
        const llama_model_kv_override * kv_overrides
        bint vocab_only
        bint check_tensors
        bint use_extra_bufts
        bint no_host
        bint no_alloc
        bint load_mtp

    struct llama_sampler

    struct llama_sampler_seq_config:
        llama_seq_id seq_id
        llama_sampler * sampler

    struct llama_context_params:
        uint32_t n_ctx
        uint32_t n_batch
        uint32_t n_ubatch
        uint32_t n_seq_max
        uint32_t n_rs_seq
        uint32_t n_outputs_max
        uint32_t n_outputs_max_per_seq
        int32_t n_threads
        int32_t n_threads_batch
        llama_context_type ctx_type
        llama_rope_scaling_type rope_scaling_type
        llama_pooling_type pooling_type
        llama_attention_type attention_type
        llama_flash_attn_type flash_attn_type
        float rope_freq_base
        float rope_freq_scale
        float yarn_ext_factor
        float yarn_attn_factor
        float yarn_beta_fast
        float yarn_beta_slow
        uint32_t yarn_orig_ctx
        float defrag_thold
        ggml_backend_sched_eval_callback cb_eval
        void * cb_eval_user_data
        ggml_type type_k
        ggml_type type_v
        ggml_abort_callback abort_callback
        void * abort_callback_data
        bint embeddings
        bint offload_kqv
        bint no_perf
        bint op_offload
        bint swa_full
        bint kv_unified
        llama_sampler_seq_config * samplers
        size_t n_samplers
        llama_context * ctx_other

    ctypedef struct llama_model_quantize_params:
        int32_t nthread
        llama_ftype ftype
        ggml_type output_tensor_type
        ggml_type token_embedding_type
        bint allow_requantize
        bint quantize_output_tensor
        bint only_copy
        bint pure
        bint keep_split
        bint dry_run
        const void * imatrix
        const llama_model_kv_override * kv_overrides
        const void * tt_overrides
        const int32_t * prune_layers
        size_t max_buf_size

    ctypedef struct llama_logit_bias:
        llama_token token
        float bias

    ctypedef struct llama_sampler_chain_params:
        bint no_perf

    ctypedef struct llama_chat_message:
        const char * role
        const char * content

    # --- init / process -------------------------------------------------------------------------
    const char * llama_version()
    llama_model_params llama_model_default_params()
    llama_context_params llama_context_default_params()
    llama_sampler_chain_params llama_sampler_chain_default_params()
    llama_model_quantize_params llama_model_quantize_default_params()
    void llama_backend_init()
    void llama_backend_free()
    void llama_numa_init(ggml_numa_strategy numa)
    int64_t llama_time_us()
    size_t llama_max_devices()
    size_t llama_max_parallel_sequences()
    bint llama_supports_mmap()
    bint llama_supports_mlock()
    bint llama_supports_gpu_offload()
    bint llama_supports_rpc()
    const char * llama_print_system_info()
    void llama_log_set(ggml_log_callback log_callback, void * user_data)
    const char * llama_ftype_name(llama_ftype ftype)
    const char * llama_flash_attn_type_name(llama_flash_attn_type flash_attn_type)

    # --- model ----------------------------------------------------------------------------------
    llama_model * llama_model_load_from_file(const char * path_model, llama_model_params params)
    llama_model * llama_model_load_from_splits(const char ** paths, size_t n_paths, llama_model_params params)
    void llama_model_save_to_file(const llama_model * model, const char * path_model)
    void llama_model_free(llama_model * model)
    const llama_vocab * llama_model_get_vocab(const llama_model * model)
    llama_rope_type llama_model_rope_type(const llama_model * model)
    int32_t llama_model_n_ctx_train(const llama_model * model)
    int32_t llama_model_n_embd(const llama_model * model)
    int32_t llama_model_n_embd_inp(const llama_model * model)
    int32_t llama_model_n_embd_out(const llama_model * model)
    int32_t llama_model_n_layer(const llama_model * model)
    int32_t llama_model_n_head(const llama_model * model)
    int32_t llama_model_n_head_kv(const llama_model * model)
    int32_t llama_model_n_swa(const llama_model * model)
    uint32_t llama_model_n_cls_out(const llama_model * model)
    const char * llama_model_cls_label(const llama_model * model, uint32_t i)
    int32_t llama_model_meta_val_str(const llama_model * model, const char * key, char * buf, size_t buf_size)
    int32_t llama_model_meta_count(const llama_model * model)
    int32_t llama_model_meta_key_by_index(const llama_model * model, int32_t i, char * buf, size_t buf_size)
    int32_t llama_model_meta_val_str_by_index(const llama_model * model, int32_t i, char * buf, size_t buf_size)
    int32_t llama_model_desc(const llama_model * model, char * buf, size_t buf_size)
    llama_ftype llama_model_ftype(const llama_model * model)
    uint64_t llama_model_size(const llama_model * model)
    const char * llama_model_chat_template(const llama_model * model, const char * name)
    uint64_t llama_model_n_params(const llama_model * model)
    bint llama_model_has_encoder(const llama_model * model)
    bint llama_model_has_decoder(const llama_model * model)
    llama_token llama_model_decoder_start_token(const llama_model * model)
    bint llama_model_is_recurrent(const llama_model * model)
    bint llama_model_is_hybrid(const llama_model * model)
    bint llama_model_is_diffusion(const llama_model * model)
    uint32_t llama_model_quantize(const char * fname_inp, const char * fname_out,
                                  const llama_model_quantize_params * params)

    # --- LoRA -----------------------------------------------------------------------------------
    llama_adapter_lora * llama_adapter_lora_init(llama_model * model, const char * path_lora)
    void llama_adapter_lora_free(llama_adapter_lora * adapter)
    int32_t llama_adapter_meta_count(const llama_adapter_lora * adapter)
    int32_t llama_adapter_meta_key_by_index(const llama_adapter_lora * adapter, int32_t i, char * buf, size_t buf_size)
    int32_t llama_adapter_meta_val_str_by_index(const llama_adapter_lora * adapter, int32_t i, char * buf, size_t buf_size)
    int32_t llama_set_adapters_lora(llama_context * ctx, llama_adapter_lora ** adapters, size_t n_adapters, float * scales)

    # --- context --------------------------------------------------------------------------------
    llama_context * llama_init_from_model(llama_model * model, llama_context_params params)
    void llama_free(llama_context * ctx)
    uint32_t llama_n_ctx(const llama_context * ctx)
    uint32_t llama_n_ctx_seq(const llama_context * ctx)
    uint32_t llama_n_batch(const llama_context * ctx)
    uint32_t llama_n_ubatch(const llama_context * ctx)
    uint32_t llama_n_seq_max(const llama_context * ctx)
    const llama_model * llama_get_model(const llama_context * ctx)
    llama_memory_t llama_get_memory(const llama_context * ctx)
    llama_pooling_type llama_get_pooling_type "llama_pooling_type"(const llama_context * ctx)
    int32_t llama_encode(llama_context * ctx, llama_batch batch)
    int32_t llama_decode(llama_context * ctx, llama_batch batch)
    void llama_set_n_threads(llama_context * ctx, int32_t n_threads, int32_t n_threads_batch)
    int32_t llama_n_threads(llama_context * ctx)
    int32_t llama_n_threads_batch(llama_context * ctx)
    void llama_set_embeddings(llama_context * ctx, bint embeddings)
    void llama_set_causal_attn(llama_context * ctx, bint causal_attn)
    void llama_set_abort_callback(llama_context * ctx, ggml_abort_callback abort_callback, void * abort_callback_data)
    void llama_synchronize(llama_context * ctx)
    float * llama_get_logits(llama_context * ctx)
    float * llama_get_logits_ith(llama_context * ctx, int32_t i)
    float * llama_get_embeddings(llama_context * ctx)
    float * llama_get_embeddings_ith(llama_context * ctx, int32_t i)
    float * llama_get_embeddings_seq(llama_context * ctx, llama_seq_id seq_id)

    # --- memory (KV cache) ----------------------------------------------------------------------
    void llama_memory_clear(llama_memory_t mem, bint data)
    bint llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1)
    void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src, llama_seq_id seq_id_dst, llama_pos p0, llama_pos p1)
    void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq_id)
    void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1, llama_pos delta)
    void llama_memory_seq_div(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1, int d)
    llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id)
    llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id)
    bint llama_memory_can_shift(llama_memory_t mem)

    # --- state ----------------------------------------------------------------------------------
    size_t llama_state_get_size(llama_context * ctx)
    size_t llama_state_get_data(llama_context * ctx, uint8_t * dst, size_t size)
    size_t llama_state_set_data(llama_context * ctx, const uint8_t * src, size_t size)
    bint llama_state_load_file(llama_context * ctx, const char * path_session, llama_token * tokens_out,
                               size_t n_token_capacity, size_t * n_token_count_out)
    bint llama_state_save_file(llama_context * ctx, const char * path_session, const llama_token * tokens,
                               size_t n_token_count)
    size_t llama_state_seq_get_size_ext(llama_context * ctx, llama_seq_id seq_id, llama_state_seq_flags flags)
    size_t llama_state_seq_get_data_ext(llama_context * ctx, uint8_t * dst, size_t size, llama_seq_id seq_id,
                                        llama_state_seq_flags flags)
    size_t llama_state_seq_set_data_ext(llama_context * ctx, const uint8_t * src, size_t size,
                                        llama_seq_id dest_seq_id, llama_state_seq_flags flags)

    # --- batch ----------------------------------------------------------------------------------
    llama_batch llama_batch_get_one(llama_token * tokens, int32_t n_tokens)
    llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max)
    void llama_batch_free(llama_batch batch)

    # --- vocab ----------------------------------------------------------------------------------
    llama_vocab_type llama_get_vocab_type "llama_vocab_type"(const llama_vocab * vocab)
    int32_t llama_vocab_n_tokens(const llama_vocab * vocab)
    const char * llama_vocab_get_text(const llama_vocab * vocab, llama_token token)
    float llama_vocab_get_score(const llama_vocab * vocab, llama_token token)
    llama_token_attr llama_vocab_get_attr(const llama_vocab * vocab, llama_token token)
    bint llama_vocab_is_eog(const llama_vocab * vocab, llama_token token)
    bint llama_vocab_is_control(const llama_vocab * vocab, llama_token token)
    llama_token llama_vocab_bos(const llama_vocab * vocab)
    llama_token llama_vocab_eos(const llama_vocab * vocab)
    llama_token llama_vocab_eot(const llama_vocab * vocab)
    llama_token llama_vocab_sep(const llama_vocab * vocab)
    llama_token llama_vocab_nl(const llama_vocab * vocab)
    llama_token llama_vocab_pad(const llama_vocab * vocab)
    llama_token llama_vocab_mask(const llama_vocab * vocab)
    bint llama_vocab_get_add_bos(const llama_vocab * vocab)
    bint llama_vocab_get_add_eos(const llama_vocab * vocab)
    bint llama_vocab_get_add_sep(const llama_vocab * vocab)
    llama_token llama_vocab_fim_pre(const llama_vocab * vocab)
    llama_token llama_vocab_fim_suf(const llama_vocab * vocab)
    llama_token llama_vocab_fim_mid(const llama_vocab * vocab)
    llama_token llama_vocab_fim_pad(const llama_vocab * vocab)
    llama_token llama_vocab_fim_rep(const llama_vocab * vocab)
    llama_token llama_vocab_fim_sep(const llama_vocab * vocab)
    int32_t llama_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len, llama_token * tokens,
                           int32_t n_tokens_max, bint add_special, bint parse_special)
    int32_t llama_token_to_piece(const llama_vocab * vocab, llama_token token, char * buf, int32_t length,
                                 int32_t lstrip, bint special)
    int32_t llama_detokenize(const llama_vocab * vocab, const llama_token * tokens, int32_t n_tokens, char * text,
                             int32_t text_len_max, bint remove_special, bint unparse_special)
    int32_t llama_chat_apply_template(const char * tmpl, const llama_chat_message * chat, size_t n_msg,
                                      bint add_ass, char * buf, int32_t length)

    # --- samplers -------------------------------------------------------------------------------
    ctypedef void * llama_sampler_context_t

    struct llama_sampler_i:
        const char * (*name)(const llama_sampler * smpl) noexcept
        void (*accept)(llama_sampler * smpl, llama_token token) noexcept
        void (*apply)(llama_sampler * smpl, llama_token_data_array * cur_p) noexcept
        void (*reset)(llama_sampler * smpl) noexcept
        llama_sampler * (*clone)(const llama_sampler * smpl) noexcept
        void (*free)(llama_sampler * smpl) noexcept
        void * backend_init
        void * backend_accept
        void * backend_apply
        void * backend_set_input
        void * backend_reset
        void * copy_state

    struct llama_sampler:
        llama_sampler_i * iface
        llama_sampler_context_t ctx

    llama_sampler * llama_sampler_init(llama_sampler_i * iface, llama_sampler_context_t ctx)
    const char * llama_sampler_name(const llama_sampler * smpl)
    void llama_sampler_accept(llama_sampler * smpl, llama_token token)
    void llama_sampler_apply(llama_sampler * smpl, llama_token_data_array * cur_p)
    void llama_sampler_reset(llama_sampler * smpl)
    llama_sampler * llama_sampler_clone(const llama_sampler * smpl)
    void llama_sampler_free(llama_sampler * smpl)
    llama_sampler * llama_sampler_chain_init(llama_sampler_chain_params params)
    void llama_sampler_chain_add(llama_sampler * chain, llama_sampler * smpl)
    llama_sampler * llama_sampler_chain_get(llama_sampler * chain, int32_t i)
    int32_t llama_sampler_chain_n(const llama_sampler * chain)
    llama_sampler * llama_sampler_chain_remove(llama_sampler * chain, int32_t i)
    llama_sampler * llama_sampler_init_greedy()
    llama_sampler * llama_sampler_init_dist(uint32_t seed)
    llama_sampler * llama_sampler_init_top_k(int32_t k)
    llama_sampler * llama_sampler_init_top_p(float p, size_t min_keep)
    llama_sampler * llama_sampler_init_min_p(float p, size_t min_keep)
    llama_sampler * llama_sampler_init_typical(float p, size_t min_keep)
    llama_sampler * llama_sampler_init_temp(float t)
    llama_sampler * llama_sampler_init_temp_ext(float t, float delta, float exponent)
    llama_sampler * llama_sampler_init_xtc(float p, float t, size_t min_keep, uint32_t seed)
    llama_sampler * llama_sampler_init_top_n_sigma(float n)
    llama_sampler * llama_sampler_init_mirostat(int32_t n_vocab, uint32_t seed, float tau, float eta, int32_t m)
    llama_sampler * llama_sampler_init_mirostat_v2(uint32_t seed, float tau, float eta)
    llama_sampler * llama_sampler_init_grammar(const llama_vocab * vocab, const char * grammar_str,
                                               const char * grammar_root)
    llama_sampler * llama_sampler_init_grammar_lazy_patterns(
            const llama_vocab * vocab, const char * grammar_str, const char * grammar_root,
            const char ** trigger_patterns, size_t num_trigger_patterns,
            const llama_token * trigger_tokens, size_t num_trigger_tokens)
    llama_sampler * llama_sampler_init_penalties(int32_t n_vocab, int32_t penalty_last_n, float penalty_repeat,
                                                 float penalty_freq, float penalty_present)
    llama_sampler * llama_sampler_init_dry(const llama_vocab * vocab, float dry_multiplier, float dry_base,
                                           int32_t dry_allowed_length, int32_t dry_penalty_last_n,
                                           const char ** seq_breakers, size_t num_breakers)
    llama_sampler * llama_sampler_init_adaptive_p(float target, float decay, uint32_t seed)
    llama_sampler * llama_sampler_init_logit_bias(int32_t n_vocab, int32_t n_logit_bias,
                                                  const llama_logit_bias * logit_bias)
    llama_sampler * llama_sampler_init_infill(const llama_vocab * vocab)
    uint32_t llama_sampler_get_seed(const llama_sampler * smpl)
    llama_token llama_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx)

    # --- perf -----------------------------------------------------------------------------------
    struct llama_perf_context_data:
        double t_start_ms
        double t_load_ms
        double t_p_eval_ms
        double t_eval_ms
        int32_t n_p_eval
        int32_t n_eval
        int32_t n_reused

    struct llama_perf_sampler_data:
        double t_sample_ms
        int32_t n_sample

    llama_perf_context_data llama_perf_context(const llama_context * ctx)
    void llama_perf_context_reset(llama_context * ctx)
    llama_perf_sampler_data llama_perf_sampler(const llama_sampler * chain)
    void llama_perf_sampler_reset(llama_sampler * chain)
