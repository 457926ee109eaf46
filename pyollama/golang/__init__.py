"""Go's semantics in Python, where Ollama's behaviour shows them byte for byte: what its Go code prints,
encodes and parses. One package, used by the template engine, the store and the configuration.

- ``strconv``: FormatFloat, Quote, QuoteRune, IsPrint;
- ``json``: encoding/json's encoder (store blobs with Ollama's digests; the templates' ``json``);
- ``fmt``: Sprint, Sprintf, Sprintln and %v printing;
- ``values``: how Python values stand in for Go's (nil, maps, structs, MISSING) in templates;
- ``time``: ParseDuration and Ollama's way of printing durations.
"""
