# Structured output: JSON schema -> GBNF with llama.cpp's converter (csrc/shim/schema_grammar.cpp).
from libcpp.string cimport string as cpp_string

from pyollama.errors import SamplerError

cdef extern from "shim/schema_grammar.h" nogil:
    int pyollama_json_schema_to_grammar(const cpp_string & schema_json, cpp_string & out, cpp_string & err)


def json_schema_to_grammar(str schema_json):
    """GBNF for a JSON schema given as JSON text; SamplerError names what the converter rejected."""
    cdef cpp_string src = schema_json.encode()
    cdef cpp_string out
    cdef cpp_string err
    cdef int rc
    with nogil:
        rc = pyollama_json_schema_to_grammar(src, out, err)
    if rc != 0:
        raise SamplerError(f"invalid JSON schema: {err.decode('utf-8', 'replace')}")
    return out.decode("utf-8")
