# Route libllama/ggml logging into Python's `logging` ("pyollama.native").
#
# The callback can fire from ggml worker threads, and from inside calls made with the GIL
# released; lines below the threshold are dropped in C without touching the GIL, the rest are
# assembled into whole lines (upstream sends fragments and CONT continuations) and logged.
import logging
import threading

from ggml cimport (ggml_log_level, GGML_LOG_LEVEL_DEBUG, GGML_LOG_LEVEL_INFO, GGML_LOG_LEVEL_WARN,
                   GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_CONT, ggml_log_set)

_native_logger = logging.getLogger("pyollama.native")
_PY_LEVELS = {GGML_LOG_LEVEL_DEBUG: logging.DEBUG, GGML_LOG_LEVEL_INFO: logging.INFO,
              GGML_LOG_LEVEL_WARN: logging.WARNING, GGML_LOG_LEVEL_ERROR: logging.ERROR}

cdef int _log_threshold = GGML_LOG_LEVEL_WARN
cdef int _log_last_level = GGML_LOG_LEVEL_INFO
_log_state = threading.local()


cdef void _emit(int level, const char * text) noexcept:
    try:
        piece = (<bytes> text).decode("utf-8", "replace")
        pending = getattr(_log_state, "pending", "") + piece
        lines = pending.split("\n")
        _log_state.pending = lines.pop()
        for line in lines:
            if line.strip():
                if level >= GGML_LOG_LEVEL_ERROR:
                    _log_state.last_error = line.strip()
                _native_logger.log(_PY_LEVELS.get(level, logging.INFO), "%s", line)
    except BaseException:
        pass   # a log line must never take the process down


cdef void _log_callback(ggml_log_level level, const char * text, void * user_data) noexcept nogil:
    global _log_last_level
    cdef int lvl = <int> level
    if lvl == GGML_LOG_LEVEL_CONT:
        lvl = _log_last_level
    else:
        _log_last_level = lvl
    # Errors are always captured: the exception raised after a failed call quotes the last one.
    if lvl < _log_threshold and lvl < GGML_LOG_LEVEL_ERROR:
        return
    with gil:
        _emit(lvl, text)


def set_log_level(level):
    """Forward native log lines at or above `level` (a `logging` level) to "pyollama.native"."""
    global _log_threshold
    if level <= logging.DEBUG:
        _log_threshold = GGML_LOG_LEVEL_DEBUG
    elif level <= logging.INFO:
        _log_threshold = GGML_LOG_LEVEL_INFO
    elif level <= logging.WARNING:
        _log_threshold = GGML_LOG_LEVEL_WARN
    else:
        _log_threshold = GGML_LOG_LEVEL_ERROR


cdef str _take_last_error():
    """The last native error line logged on this thread (and forget it)."""
    msg = getattr(_log_state, "last_error", "")
    _log_state.last_error = ""
    return msg


def _install_log_callback():
    llama_log_set(_log_callback, NULL)
    ggml_log_set(_log_callback, NULL)
