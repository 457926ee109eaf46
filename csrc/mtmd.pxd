# Mirror of tools/mtmd/mtmd.h and mtmd-helper.h at the pin (libmtmd: images and audio into a text model):
# what pyollama uses. tests/engine/test_api_drift.py checks it against the headers.
from libc.stdint cimport int32_t, int64_t, uint32_t
from libcpp cimport bool as cbool

from ggml cimport ggml_backend_dev_t, ggml_backend_sched_eval_callback, ggml_log_callback
from llama cimport llama_context, llama_flash_attn_type, llama_model, llama_pos, llama_seq_id, llama_token


cdef extern from "mtmd.h" nogil:
    cdef enum mtmd_input_chunk_type:
        MTMD_INPUT_CHUNK_TYPE_TEXT
        MTMD_INPUT_CHUNK_TYPE_IMAGE
        MTMD_INPUT_CHUNK_TYPE_AUDIO
        MTMD_INPUT_CHUNK_TYPE_COUNT

    struct mtmd_context
    struct mtmd_bitmap
    struct mtmd_input_chunk
    struct mtmd_input_chunks

    ctypedef cbool (*mtmd_progress_callback)(float progress, void * user_data) noexcept

    cdef struct mtmd_input_text:
        const char * text
        size_t text_len
        cbool add_special
        cbool parse_special

    cdef struct mtmd_context_params:
        cbool use_gpu
        ggml_backend_dev_t device
        cbool print_timings
        int n_threads
        const char * image_marker
        const char * media_marker
        llama_flash_attn_type flash_attn_type
        cbool warmup
        int image_min_tokens
        int image_max_tokens
        ggml_backend_sched_eval_callback cb_eval
        void * cb_eval_user_data
        int32_t batch_max_tokens
        mtmd_progress_callback progress_callback
        void * progress_callback_user_data

    const char * mtmd_default_marker()
    mtmd_context_params mtmd_context_params_default()
    mtmd_context * mtmd_init_from_file(const char * mmproj_fname, const llama_model * text_model,
                                       const mtmd_context_params ctx_params)
    void mtmd_free(mtmd_context * ctx)
    cbool mtmd_support_vision(const mtmd_context * ctx)
    cbool mtmd_support_audio(const mtmd_context * ctx)
    cbool mtmd_decode_use_mrope(const mtmd_context * ctx)

    uint32_t mtmd_bitmap_get_nx(const mtmd_bitmap * bitmap)
    uint32_t mtmd_bitmap_get_ny(const mtmd_bitmap * bitmap)
    const char * mtmd_bitmap_get_id(const mtmd_bitmap * bitmap)
    void mtmd_bitmap_free(mtmd_bitmap * bitmap)

    mtmd_input_chunks * mtmd_input_chunks_init()
    size_t mtmd_input_chunks_size(const mtmd_input_chunks * chunks)
    const mtmd_input_chunk * mtmd_input_chunks_get(const mtmd_input_chunks * chunks, size_t idx)
    void mtmd_input_chunks_free(mtmd_input_chunks * chunks)
    mtmd_input_chunk_type mtmd_input_chunk_get_type(const mtmd_input_chunk * chunk)
    const llama_token * mtmd_input_chunk_get_tokens_text(const mtmd_input_chunk * chunk, size_t * n_tokens_output)
    size_t mtmd_input_chunk_get_n_tokens(const mtmd_input_chunk * chunk)
    const char * mtmd_input_chunk_get_id(const mtmd_input_chunk * chunk)
    llama_pos mtmd_input_chunk_get_n_pos(const mtmd_input_chunk * chunk)

    int32_t mtmd_tokenize(const mtmd_context * ctx, mtmd_input_chunks * output, const mtmd_input_text * text,
                          const mtmd_bitmap * const * bitmaps, size_t n_bitmaps)
    int32_t mtmd_encode_chunk(mtmd_context * ctx, const mtmd_input_chunk * chunk)
    float * mtmd_get_output_embd(mtmd_context * ctx)


cdef extern from "mtmd-helper.h" nogil:
    struct mtmd_helper_video

    cdef struct mtmd_helper_video_init_params:
        float fps_target
        const char * ffmpeg_bin_dir
        int64_t timestamp_interval_ms

    cdef struct mtmd_helper_init_opt:
        mtmd_helper_video_init_params video_params

    cdef struct mtmd_helper_bitmap_wrapper:
        mtmd_bitmap * bitmap
        mtmd_helper_video * video_ctx

    mtmd_helper_init_opt mtmd_helper_init_opt_default()
    void mtmd_helper_log_set(ggml_log_callback log_callback, void * user_data)
    mtmd_helper_bitmap_wrapper mtmd_helper_bitmap_init_from_buf(const mtmd_context * ctx, const unsigned char * buf,
                                                                size_t len, cbool placeholder, mtmd_helper_init_opt opt)
    size_t mtmd_helper_get_n_tokens(const mtmd_input_chunks * chunks)
    llama_pos mtmd_helper_get_n_pos(const mtmd_input_chunks * chunks)
    int32_t mtmd_helper_eval_chunks(mtmd_context * ctx, llama_context * lctx, const mtmd_input_chunks * chunks,
                                    llama_pos n_past, llama_seq_id seq_id, int32_t n_batch, cbool logits_last,
                                    llama_pos * new_n_past)

    cdef struct mtmd_helper_embd_batch:
        int32_t n_tokens
        const float * embd
        int32_t n_embd
        const llama_pos * pos
        int32_t n_pos
        llama_seq_id seq_id

    ctypedef int32_t (*mtmd_helper_post_decode_callback)(const mtmd_helper_embd_batch * batch, void * user_data) noexcept

    int32_t mtmd_helper_decode_image_chunk(mtmd_context * ctx, llama_context * lctx, const mtmd_input_chunk * chunk,
                                           float * encoded_embd, llama_pos n_past, llama_seq_id seq_id,
                                           int32_t n_batch, llama_pos * new_n_past,
                                           mtmd_helper_post_decode_callback callback, void * user_data)
