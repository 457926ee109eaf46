# Build one CPU backend for the machine doing the build.
#
# GGML_NATIVE cannot be combined with GGML_BACKEND_DL (the loader scores backends by the feature
# definitions, which -march=native does not set), so ask the compiler which ISA extensions
# -march=native enables and turn on the matching upstream GGML_<feature> options instead. This is
# the variant GGML_CPU_ALL_VARIANTS would pick on this machine, at a fourteenth of the build time.
#
# AMX stays off unless PYOLLAMA_NATIVE_AMX=ON: on the VMs we build on, CPUID reports AMX and the
# kernel grants tile permission, yet ggml's AMX kernels die with SIGILL (tilezero on an
# unconfigured tile) — llama-bench from the same tree crashes the same way (upstream #28328,
# #28756 are the same class of bug). AMX only speeds up large prompt batches anyway.
option(PYOLLAMA_NATIVE_AMX "native CPU backend: use AMX when the compiler reports it" OFF)
function(pyollama_native_cpu_features)
    if (NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$")
        message(STATUS "pyollama: no native feature probe for ${CMAKE_SYSTEM_PROCESSOR}; building all CPU variants")
        set(GGML_CPU_ALL_VARIANTS ON CACHE BOOL "" FORCE)
        return()
    endif()
    execute_process(
        COMMAND "${CMAKE_C_COMPILER}" -march=native -dM -E -x c /dev/null
        OUTPUT_VARIABLE _macros RESULT_VARIABLE _rc ERROR_QUIET)
    if (NOT _rc EQUAL 0)
        message(STATUS "pyollama: '${CMAKE_C_COMPILER} -march=native' failed; building all CPU variants")
        set(GGML_CPU_ALL_VARIANTS ON CACHE BOOL "" FORCE)
        return()
    endif()
    set(_map
        SSE42:__SSE4_2__ AVX:__AVX__ AVX2:__AVX2__ BMI2:__BMI2__ FMA:__FMA__ F16C:__F16C__
        AVX_VNNI:__AVXVNNI__ AVX512:__AVX512F__ AVX512_VBMI:__AVX512VBMI__
        AVX512_VNNI:__AVX512VNNI__ AVX512_BF16:__AVX512BF16__
        AMX_TILE:__AMX_TILE__ AMX_INT8:__AMX_INT8__ AMX_BF16:__AMX_BF16__)
    set(_on "")
    foreach (pair IN LISTS _map)
        string(REPLACE ":" ";" pair "${pair}")
        list(GET pair 0 feat)
        list(GET pair 1 macro)
        if (feat MATCHES "^AMX_" AND NOT PYOLLAMA_NATIVE_AMX)
            set(GGML_${feat} OFF CACHE BOOL "" FORCE)
        elseif (_macros MATCHES "#define ${macro} 1")
            set(GGML_${feat} ON CACHE BOOL "" FORCE)
            list(APPEND _on ${feat})
        else()
            set(GGML_${feat} OFF CACHE BOOL "" FORCE)
        endif()
    endforeach()
    set(GGML_CPU_ALL_VARIANTS OFF CACHE BOOL "" FORCE)
    message(STATUS "pyollama: native CPU backend with ${_on}")
endfunction()
