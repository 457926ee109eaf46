# Quantization (llama_model_quantize) with llama-quantize's type names.
from pyollama.errors import QuantizeError

# Names as llama-quantize spells them.
FTYPES = {
    "F32": LLAMA_FTYPE_ALL_F32, "F16": LLAMA_FTYPE_MOSTLY_F16, "BF16": LLAMA_FTYPE_MOSTLY_BF16,
    "Q4_0": LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_1": LLAMA_FTYPE_MOSTLY_Q4_1, "Q5_0": LLAMA_FTYPE_MOSTLY_Q5_0,
    "Q5_1": LLAMA_FTYPE_MOSTLY_Q5_1, "Q8_0": LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q2_K": LLAMA_FTYPE_MOSTLY_Q2_K, "Q2_K_S": LLAMA_FTYPE_MOSTLY_Q2_K_S,
    "Q3_K_S": LLAMA_FTYPE_MOSTLY_Q3_K_S, "Q3_K_M": LLAMA_FTYPE_MOSTLY_Q3_K_M,
    "Q3_K_L": LLAMA_FTYPE_MOSTLY_Q3_K_L, "Q4_K_S": LLAMA_FTYPE_MOSTLY_Q4_K_S,
    "Q4_K_M": LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q5_K_S": LLAMA_FTYPE_MOSTLY_Q5_K_S,
    "Q5_K_M": LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q6_K": LLAMA_FTYPE_MOSTLY_Q6_K,
    "IQ2_XXS": LLAMA_FTYPE_MOSTLY_IQ2_XXS, "IQ2_XS": LLAMA_FTYPE_MOSTLY_IQ2_XS,
    "IQ2_S": LLAMA_FTYPE_MOSTLY_IQ2_S, "IQ2_M": LLAMA_FTYPE_MOSTLY_IQ2_M,
    "IQ3_XXS": LLAMA_FTYPE_MOSTLY_IQ3_XXS, "IQ3_XS": LLAMA_FTYPE_MOSTLY_IQ3_XS,
    "IQ3_S": LLAMA_FTYPE_MOSTLY_IQ3_S, "IQ3_M": LLAMA_FTYPE_MOSTLY_IQ3_M,
    "IQ1_S": LLAMA_FTYPE_MOSTLY_IQ1_S, "IQ1_M": LLAMA_FTYPE_MOSTLY_IQ1_M,
    "IQ4_NL": LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_XS": LLAMA_FTYPE_MOSTLY_IQ4_XS,
    "TQ1_0": LLAMA_FTYPE_MOSTLY_TQ1_0, "TQ2_0": LLAMA_FTYPE_MOSTLY_TQ2_0,
    "MXFP4_MOE": LLAMA_FTYPE_MOSTLY_MXFP4_MOE,
}
# Types that need an importance matrix to be any good; upstream refuses some without one.
_NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"}


def ftype_name(int ftype):
    """libllama's description of a file type id (e.g. 15 → 'Q4_K - Medium')."""
    return _s(llama_ftype_name(<llama_ftype> ftype))


def quantize(src, dst, ftype, *, int nthread=0, bint allow_requantize=False, bint pure=False,
             bint quantize_output_tensor=True, bint only_copy=False, bint dry_run=False):
    """Quantize the GGUF at `src` into `dst` (GIL released). `ftype` is a llama-quantize name
    such as "Q4_K_M" or "q8_0" (case-insensitive) or a LLAMA_FTYPE_* number."""
    src, dst = os.fspath(src), os.fspath(dst)
    _check_gguf_file(src)
    if isinstance(ftype, str):
        key = ftype.upper()
        if key not in FTYPES:
            raise QuantizeError(f"unsupported quantization type {ftype!r}; one of {', '.join(FTYPES)}")
        if key in _NEEDS_IMATRIX:
            raise QuantizeError(f"{key} needs an importance matrix, which pyollama does not take yet")
        code = FTYPES[key]
    else:
        code = int(ftype)
        if code not in FTYPES.values():
            raise QuantizeError(f"unknown file type id {ftype}")
    cdef llama_model_quantize_params p = llama_model_quantize_default_params()
    p.nthread = nthread
    p.ftype = <llama_ftype> code
    p.allow_requantize = allow_requantize
    p.pure = pure
    p.quantize_output_tensor = quantize_output_tensor
    p.only_copy = only_copy
    p.dry_run = dry_run
    cdef bytes bs = src.encode()
    cdef bytes bd = dst.encode()
    cdef const char * cs = bs
    cdef const char * cd = bd
    cdef uint32_t rc
    _take_last_error()
    with nogil:
        rc = llama_model_quantize(cs, cd, &p)
    if rc != 0:
        why = _take_last_error()
        raise QuantizeError(f"quantizing {src} to {ftype} failed" + (f": {why}" if why else ""))
