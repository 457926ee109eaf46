// JSON schema -> GBNF through llama.cpp's own converter (common/json-schema-to-grammar), for
// structured outputs. C++ exceptions stop here: Cython sees a return code and a message.
#pragma once
#include <string>

// 0 on success (grammar in `out`), 1 on a bad schema or bad JSON (message in `err`).
int pyollama_json_schema_to_grammar(const std::string & schema_json, std::string & out, std::string & err);
