"""Quantization for ``create --quantize``: checks here, the work in the native extension.

``pyollama._native.quantize(src_path, dst_path, ftype, nthread=0)`` (llama.cpp's
``llama_model_quantize``, ftype names as ``llama-quantize`` spells them) does the conversion and raises
``pyollama.errors.QuantizeError``. It is imported lazily so the rest of the store works without the
extension.

Thread-safety: ``quantize`` blocks the calling thread (the native call releases the GIL).
"""
from __future__ import annotations

from pathlib import Path

from pyollama.errors import QuantizeError, UnsupportedQuantization

# What create accepts (Ollama's ParseFileType names; case-insensitive on input). IQ types need an
# importance matrix, which create has no way to supply, so they are not offered.
QUANT_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L",
               "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K")
SOURCE_TYPES = ("F32", "F16", "BF16")


def normalize(qtype: str) -> str:
    """``q4_K_M`` → ``Q4_K_M``; raises UnsupportedQuantization for an unknown type."""
    q = qtype.strip().upper()
    if q not in QUANT_TYPES:
        raise UnsupportedQuantization(f"unsupported quantization type {qtype}; "
                                      f"choose one of {', '.join(QUANT_TYPES)}")
    return q


def check_source(file_type_name: str) -> None:
    if file_type_name not in SOURCE_TYPES:
        raise UnsupportedQuantization(
            f"quantization is only supported for F16, BF16 and F32 models (this one is {file_type_name})")


def quantize(src: Path, dst: Path, qtype: str, nthread: int = 0) -> None:
    """Write ``src`` quantized to ``qtype`` at ``dst`` through the native extension."""
    try:
        from pyollama import _native
    except ImportError as e:
        raise QuantizeError(f"quantization needs the native extension, which is not available: {e}") from None
    _native.quantize(str(src), str(dst), normalize(qtype), nthread=nthread)
