# CUDA (-DGGML_CUDA=ON): what upstream's ggml-cuda needs that a machine may lack.
#
# - Architectures: the GPUs present (nvidia-smi) unless CMAKE_CUDA_ARCHITECTURES/CUDAARCHS says
#   otherwise; with no GPU, upstream's default list (every common architecture: slow to build).
# - cuBLAS: the toolkit's when it has one, else PyPI's nvidia-cublas wheel installed beside the
#   Python doing the build (`pip install nvidia-cublas`), linked by full path and found again at
#   run time through an RPATH relative to site-packages.
# - The driver (libcuda.so.1): a generated link-only stub where no driver or toolkit stub exists
#   (a build machine without a GPU). See cmake/cuda_support.py.
#
# The CUDA backend is its own module (GGML_BACKEND_DL): without a GPU or driver it fails to load
# and the CPU backends serve.

function(pyollama_cuda_before_upstream)
    if (NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
        find_program(PYOLLAMA_NVIDIA_SMI nvidia-smi)
        if (PYOLLAMA_NVIDIA_SMI)
            execute_process(COMMAND "${PYOLLAMA_NVIDIA_SMI}" --query-gpu=compute_cap --format=csv,noheader
                            OUTPUT_VARIABLE _caps RESULT_VARIABLE _rc ERROR_QUIET)
            string(REGEX MATCHALL "[0-9]+\\.[0-9]+" _caps "${_caps}")
            set(_archs "")
            foreach (cap IN LISTS _caps)
                string(REPLACE "." "" cap "${cap}")
                list(APPEND _archs "${cap}-real")
            endforeach()
            list(REMOVE_DUPLICATES _archs)
            if (_rc EQUAL 0 AND _archs)
                message(STATUS "pyollama: CUDA architectures of the GPUs here: ${_archs}")
                set(CMAKE_CUDA_ARCHITECTURES "${_archs}" CACHE STRING "CUDA architectures" FORCE)
            endif()
        endif()
    endif()

    find_package(CUDAToolkit REQUIRED)
    if (CCACHE_PROGRAM)
        set(CMAKE_CUDA_COMPILER_LAUNCHER "${CCACHE_PROGRAM}" PARENT_SCOPE)
    endif()

    if (NOT TARGET CUDA::cublas OR NOT TARGET CUDA::cublasLt)
        execute_process(COMMAND "${Python_EXECUTABLE}" "${CMAKE_CURRENT_SOURCE_DIR}/cmake/cuda_support.py" wheels
                        OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
        if (NOT _rc EQUAL 0)
            message(FATAL_ERROR
                "GGML_CUDA=ON: the CUDA toolkit at ${CUDAToolkit_LIBRARY_DIR} has no cuBLAS, and no nvidia-cublas "
                "wheel is installed for ${Python_EXECUTABLE}. Install one matching CUDA ${CUDAToolkit_VERSION_MAJOR} "
                "(pip install 'nvidia-cublas==${CUDAToolkit_VERSION_MAJOR}.${CUDAToolkit_VERSION_MINOR}.*'), "
                "or install cuBLAS with the toolkit.")
        endif()
        string(REGEX MATCHALL "[A-Z_]+=[^\n]*" _lines "${_out}")
        foreach (line IN LISTS _lines)
            string(REGEX MATCH "^([A-Z_]+)=(.*)$" _ "${line}")
            set(_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
        endforeach()
        # Only cuBLAS's own headers: the wheel folder may also hold a newer cudart's headers, which
        # must not shadow the compiler's own.
        set(_inc "${CMAKE_BINARY_DIR}/cuda/cublas-include")
        file(MAKE_DIRECTORY "${_inc}")
        file(GLOB _hdrs "${_CUBLAS_INCLUDE}/cublas*.h")
        file(COPY ${_hdrs} DESTINATION "${_inc}")
        foreach (lib IN ITEMS cublas cublasLt)
            string(TOUPPER "${lib}" _key)
            add_library(CUDA::${lib} SHARED IMPORTED)
            set_target_properties(CUDA::${lib} PROPERTIES
                IMPORTED_LOCATION "${_${_key}_LIBRARY}"
                INTERFACE_INCLUDE_DIRECTORIES "${_inc};${CUDAToolkit_INCLUDE_DIRS}")
        endforeach()
        target_link_libraries(CUDA::cublas INTERFACE CUDA::cublasLt)
        message(STATUS "pyollama: cuBLAS from the nvidia-cublas wheel: ${_CUBLAS_LIBDIR}")
        set(PYOLLAMA_CUBLAS_RPATH "${_CUBLAS_RPATH}" CACHE INTERNAL "")
    else()
        set(PYOLLAMA_CUBLAS_RPATH "" CACHE INTERNAL "")
    endif()

    if (NOT TARGET CUDA::cuda_driver)
        get_filename_component(_stub_dir "${CMAKE_BINARY_DIR}/cuda/stubs" ABSOLUTE)
        list(GET CUDAToolkit_INCLUDE_DIRS 0 _cuinc)
        execute_process(
            COMMAND "${Python_EXECUTABLE}" "${CMAKE_CURRENT_SOURCE_DIR}/cmake/cuda_support.py" stub
                    "${_stub_dir}" "${CMAKE_C_COMPILER}" "${_cuinc}"
                    "${LLAMA_CPP_SOURCE_DIR}/ggml/src/ggml-cuda"
            OUTPUT_VARIABLE _stub RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
        if (NOT _rc EQUAL 0)
            message(FATAL_ERROR "GGML_CUDA=ON: no CUDA driver library here and the link stub could not be built")
        endif()
        # As FindCUDAToolkit treats toolkit stubs: an import library only, no RPATH entry.
        add_library(CUDA::cuda_driver SHARED IMPORTED)
        set_target_properties(CUDA::cuda_driver PROPERTIES IMPORTED_IMPLIB "${_stub}")
        message(STATUS "pyollama: no CUDA driver here; linking against a generated stub (${_stub})")
    endif()
endfunction()

function(pyollama_cuda_after_upstream)
    if (PYOLLAMA_CUBLAS_RPATH)
        set_property(TARGET ggml-cuda APPEND PROPERTY INSTALL_RPATH "${PYOLLAMA_CUBLAS_RPATH}")
    endif()
endfunction()
