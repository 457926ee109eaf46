#include "schema_grammar.h"

#include "json-schema-to-grammar.h"

#include <exception>

int pyollama_json_schema_to_grammar(const std::string & schema_json, std::string & out, std::string & err) {
    try {
        out = json_schema_to_grammar(common_json::parse(schema_json));
        return 0;
    } catch (const std::exception & e) {
        err = e.what();
        return 1;
    }
}
