"""High-level engine API for library users: load a model, generate, embed, sample.

    from pyollama.engine import LLM
    with LLM("model.gguf") as llm:
        print(llm.complete("Hello", num_predict=16, temperature=0).text)
"""
from __future__ import annotations

from pyollama.engine.detok import Detokenizer
from pyollama.engine.llm import LLM, Generation, Piece, default_threads
from pyollama.engine.sampling import SamplingParams, TokenSampler
from pyollama.engine.stops import StopMatcher

__all__ = ["LLM", "Generation", "Piece", "SamplingParams", "TokenSampler", "Detokenizer",
           "StopMatcher", "default_threads"]
