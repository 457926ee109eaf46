"""The exception hierarchy: one root, one branch per layer.

The HTTP layer maps classes (never message text) to statuses in one table
(`pyollama.api.errors`); each class carries its default status here so that table stays a lookup.
Messages are meant for users: they name the thing that is wrong and, where it helps, what to do.
"""
from __future__ import annotations


class PyollamaError(Exception):
    """Root of every error pyollama raises on purpose."""

    status = 500


# --- native engine -------------------------------------------------------------------------------
class NativeError(PyollamaError):
    """An error reported by libllama/ggml."""


class ModelLoadError(NativeError):
    """A model file is missing, truncated, not GGUF, or its architecture is unsupported."""

    status = 400


class ContextError(NativeError):
    """A context could not be created (bad n_ctx, out of memory, unsupported option)."""

    status = 400


class DecodeError(NativeError):
    """llama_decode/llama_encode failed; `code` is libllama's return value."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class NoKVSlotError(DecodeError):
    """No room left in the KV cache for the batch (libllama return 1)."""

    status = 503


class DecodeAbortedError(DecodeError):
    """The abort flag stopped a decode (libllama return 2)."""

    status = 499


class InvalidBatchError(DecodeError):
    """The batch was rejected as malformed (libllama return -1), e.g. bad token ids or positions."""

    status = 400


class BatchFullError(NativeError, IndexError):
    """More tokens were added to a Batch than it was allocated for."""

    status = 400


class SamplerError(NativeError):
    """A sampler could not be built (e.g. a GBNF grammar failed to parse)."""

    status = 400


class QuantizeError(NativeError):
    """llama_model_quantize failed."""

    status = 400


class TokenizeError(NativeError, ValueError):
    """Text could not be tokenized or tokens detokenized."""

    status = 400


class MediaError(NativeError, ValueError):
    """An image (or audio clip) that libmtmd cannot use: not a format it decodes, corrupt, or more media
    than the prompt has markers for."""

    status = 400


# --- templates -----------------------------------------------------------------------------------
class TemplateError(PyollamaError):
    """A prompt template failed to parse or execute."""

    status = 400

    def __init__(self, message: str, line: int = 0, col: int = 0):
        super().__init__(message)
        self.line = line  # 1-based; 0 when unknown
        self.col = col    # 0-based byte offset in the line (Go's convention); 0 when unknown


class TemplateParseError(TemplateError):
    """The template text is not valid (Go template syntax or Jinja syntax)."""


class TemplateExecError(TemplateError):
    """The template parsed but failed while rendering (bad field, wrong types, raise_exception)."""


# --- store ---------------------------------------------------------------------------------------
class StoreError(PyollamaError):
    """Model store, names, Modelfiles and registries."""


class InvalidModelName(StoreError, ValueError):
    status = 400


class ModelNotFound(StoreError, LookupError):
    status = 404


class ModelfileError(StoreError, ValueError):
    status = 400


class InvalidDigest(StoreError, ValueError):
    """A digest that is not ``sha256:<64 hex>`` (message: ``invalid digest format``)."""

    status = 400


class BlobNotFound(StoreError, LookupError):
    status = 404


class DigestMismatch(StoreError):
    """Bytes whose sha256 differs from the digest they were sent or stored under."""

    status = 400

    def __init__(self, message: str, *, want: str = "", got: str = ""):
        super().__init__(message)
        self.want = want
        self.got = got


class BlobBusy(StoreError):
    """Another process holds the partial download of this blob."""

    status = 409


class InvalidManifest(StoreError, ValueError):
    status = 400


class InvalidGGUF(StoreError, ValueError):
    """Not a GGUF file, or a truncated/corrupt header."""

    status = 400


class ConvertError(StoreError, ValueError):
    """A safetensors folder that cannot be converted (unsupported architecture, missing files)."""

    status = 400


class CreateError(StoreError, ValueError):
    """A create request that cannot be carried out as given (bad field, missing source)."""

    status = 400


class UnsupportedQuantization(CreateError):
    """A quantization type that create cannot produce."""


class RegistryError(StoreError):
    """A registry refused or failed a pull/push. ``http_status`` is the registry's HTTP status (0 when
    none arrived) and ``code`` its OCI error code (``MANIFEST_UNKNOWN``, ``BLOB_UPLOAD_INVALID``, …)."""

    status = 500   # Ollama answers a failed pull/push with 500

    def __init__(self, message: str, *, http_status: int = 0, code: str = ""):
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class RegistryUnreachable(RegistryError):
    """No connection to the registry (refused, DNS, TLS) or it stopped answering within the timeouts."""

    status = 502


class RemoteModelNotFound(RegistryError, LookupError):
    """The registry has no such model/tag (Ollama: ``pull model manifest: file does not exist``)."""

    status = 404


class AuthError(RegistryError):
    """Missing, wrong or insufficient registry credentials (HTTP 401/403)."""

    status = 401


class InsecureProtocol(RegistryError):
    """A plain-http registry without ``insecure`` (Ollama: ``insecure protocol http``)."""

    status = 400


class WorkerUnavailable(NativeError):
    """An RPC worker (a remote device) cannot be used: unreachable, silent, or of another protocol
    version. ``endpoint`` names it, ``reason`` says why."""

    status = 502

    def __init__(self, endpoint: str, reason: str):
        super().__init__(f"RPC worker {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason

    def __reduce__(self):        # crosses the runner's process boundary intact
        return type(self), (self.endpoint, self.reason)


# --- scheduler / runner --------------------------------------------------------------------------
class SchedulerError(PyollamaError):
    """Loading, queueing and running requests."""


class RunnerDied(SchedulerError):
    """A runner stopped (crash, out of memory, closed) while requests were in flight."""


class QueueFull(SchedulerError):
    status = 503


class RequestCancelled(SchedulerError):
    status = 499


class InsufficientMemory(SchedulerError):
    """The model (weights + KV cache + overhead) does not fit the free memory, even with nothing else
    loaded."""


class LoadTimeout(SchedulerError):
    """A model load took longer than ``OLLAMA_LOAD_TIMEOUT``."""


class ShuttingDown(SchedulerError):
    """The server is stopping; queued requests are turned away."""

    status = 503


class FeatureUnavailable(PyollamaError):
    """A request needs a part of pyollama that this build does not have yet (e.g. vision)."""

    status = 501


# --- requests ------------------------------------------------------------------------------------
class InvalidRequest(PyollamaError, ValueError):
    """A request option or value is out of range or of the wrong type."""

    status = 400


class RequestTooLarge(InvalidRequest):
    """A request body over the server's size limit."""

    status = 413


# --- CLI (client side) ---------------------------------------------------------------------------
class ClientError(PyollamaError):
    """What the ``pyollama`` command reports as one ``Error: ...`` line. ``status`` is the server's HTTP
    status when the error came from the server (0 for errors found on the client side)."""

    status = 0

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class ServerUnreachable(ClientError):
    """No server answers at ``OLLAMA_HOST`` (and none could be started in the background)."""
