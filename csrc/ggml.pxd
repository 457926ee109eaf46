# Mirror of the parts of ggml.h / ggml-cpu.h / ggml-backend.h that pyollama uses.
# Names and values follow the pinned headers; tests/engine/test_api_drift.py checks them.
from libc.stdint cimport int32_t, int64_t, uint32_t
from libcpp cimport bool as cbool

cdef extern from "ggml.h" nogil:
    cdef enum ggml_type:
        GGML_TYPE_F32 = 0
        GGML_TYPE_F16 = 1
        GGML_TYPE_Q4_0 = 2
        GGML_TYPE_Q4_1 = 3
        GGML_TYPE_Q5_0 = 6
        GGML_TYPE_Q5_1 = 7
        GGML_TYPE_Q8_0 = 8
        GGML_TYPE_Q8_1 = 9
        GGML_TYPE_Q2_K = 10
        GGML_TYPE_Q3_K = 11
        GGML_TYPE_Q4_K = 12
        GGML_TYPE_Q5_K = 13
        GGML_TYPE_Q6_K = 14
        GGML_TYPE_Q8_K = 15
        GGML_TYPE_IQ2_XXS = 16
        GGML_TYPE_IQ2_XS = 17
        GGML_TYPE_IQ3_XXS = 18
        GGML_TYPE_IQ1_S = 19
        GGML_TYPE_IQ4_NL = 20
        GGML_TYPE_IQ3_S = 21
        GGML_TYPE_IQ2_S = 22
        GGML_TYPE_IQ4_XS = 23
        GGML_TYPE_I8 = 24
        GGML_TYPE_I16 = 25
        GGML_TYPE_I32 = 26
        GGML_TYPE_I64 = 27
        GGML_TYPE_F64 = 28
        GGML_TYPE_IQ1_M = 29
        GGML_TYPE_BF16 = 30
        GGML_TYPE_TQ1_0 = 34
        GGML_TYPE_TQ2_0 = 35
        GGML_TYPE_MXFP4 = 39
        GGML_TYPE_NVFP4 = 40
        GGML_TYPE_Q1_0 = 41
        GGML_TYPE_Q2_0 = 42
        GGML_TYPE_COUNT = 43

    cdef enum ggml_log_level:
        GGML_LOG_LEVEL_NONE = 0
        GGML_LOG_LEVEL_DEBUG = 1
        GGML_LOG_LEVEL_INFO = 2
        GGML_LOG_LEVEL_WARN = 3
        GGML_LOG_LEVEL_ERROR = 4
        GGML_LOG_LEVEL_CONT = 5

    ctypedef void (*ggml_log_callback)(ggml_log_level level, const char * text, void * user_data) noexcept
    ctypedef cbool (*ggml_abort_callback)(void * data) noexcept

    struct ggml_tensor
    struct ggml_context
    struct ggml_cgraph
    struct ggml_threadpool
    ctypedef ggml_threadpool * ggml_threadpool_t

    const char * ggml_type_name(ggml_type type)
    void ggml_log_set(ggml_log_callback log_callback, void * user_data)


cdef extern from "ggml-cpu.h" nogil:
    cdef enum ggml_numa_strategy:
        GGML_NUMA_STRATEGY_DISABLED = 0
        GGML_NUMA_STRATEGY_DISTRIBUTE = 1
        GGML_NUMA_STRATEGY_ISOLATE = 2
        GGML_NUMA_STRATEGY_NUMACTL = 3
        GGML_NUMA_STRATEGY_MIRROR = 4
        GGML_NUMA_STRATEGY_COUNT


cdef extern from "ggml-backend.h" nogil:
    struct ggml_backend_buffer_type
    ctypedef ggml_backend_buffer_type * ggml_backend_buffer_type_t
    struct ggml_backend_reg
    ctypedef ggml_backend_reg * ggml_backend_reg_t
    struct ggml_backend_device
    ctypedef ggml_backend_device * ggml_backend_dev_t

    cdef enum ggml_backend_dev_type:
        GGML_BACKEND_DEVICE_TYPE_CPU
        GGML_BACKEND_DEVICE_TYPE_GPU
        GGML_BACKEND_DEVICE_TYPE_IGPU
        GGML_BACKEND_DEVICE_TYPE_ACCEL
        GGML_BACKEND_DEVICE_TYPE_META

    struct ggml_backend_dev_caps:
        bint async_ "async"
        bint host_buffer
        bint buffer_from_host_ptr
        bint events
        bint mmap_support

    struct ggml_backend_dev_props:
        const char * name
        const char * description
        size_t memory_free
        size_t memory_total
        ggml_backend_dev_type type
        const char * device_id
        ggml_backend_dev_caps caps

    ctypedef cbool (*ggml_backend_sched_eval_callback)(ggml_tensor * t, cbool ask, void * user_data) noexcept

    const char * ggml_backend_dev_name(ggml_backend_dev_t device)
    const char * ggml_backend_dev_description(ggml_backend_dev_t device)
    void ggml_backend_dev_memory(ggml_backend_dev_t device, size_t * free, size_t * total)
    void ggml_backend_dev_get_props(ggml_backend_dev_t device, ggml_backend_dev_props * props)
    ggml_backend_reg_t ggml_backend_dev_backend_reg(ggml_backend_dev_t device)

    const char * ggml_backend_reg_name(ggml_backend_reg_t reg)
    size_t ggml_backend_reg_dev_count(ggml_backend_reg_t reg)
    size_t ggml_backend_reg_count()
    ggml_backend_reg_t ggml_backend_reg_get(size_t index)
    ggml_backend_reg_t ggml_backend_reg_by_name(const char * name)
    size_t ggml_backend_dev_count()
    ggml_backend_dev_t ggml_backend_dev_get(size_t index)
    ggml_backend_dev_t ggml_backend_dev_by_name(const char * name)
    ggml_backend_dev_t ggml_backend_reg_dev_get(ggml_backend_reg_t reg, size_t index)
    void * ggml_backend_reg_get_proc_address(ggml_backend_reg_t reg, const char * name)
    void ggml_backend_register(ggml_backend_reg_t reg)

    ggml_backend_reg_t ggml_backend_load(const char * path)
    void ggml_backend_load_all()
    void ggml_backend_load_all_from_path(const char * dir_path)
