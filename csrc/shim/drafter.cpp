#include "shim/drafter.h"

#include "common.h"
#include "speculative.h"

#include <cstdio>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

struct pyollama_drafter {
    common_speculative * spec = nullptr;
    std::vector<llama_tokens> history;   // per sequence: prompt + accepted tokens
    std::vector<llama_tokens> result;    // per sequence: the last draft
    std::vector<int32_t> drafted;        // per sequence: length of the last draft not yet accepted
};

static void put_err(char * err, size_t err_len, const char * msg) {
    if (err && err_len) {
        snprintf(err, err_len, "%s", msg);
    }
}

pyollama_drafter * pyollama_drafter_new(const char * types, uint32_t n_seq, uint16_t size_n, uint16_t size_m,
                                        uint16_t min_hits, char * err, size_t err_len) {
    try {
        std::vector<std::string> names;
        std::stringstream ss(types ? types : "");
        for (std::string name; std::getline(ss, name, ',');) {
            if (!name.empty()) {
                names.push_back(name);
            }
        }
        common_params_speculative params;
        params.types = common_speculative_types_from_names(names);
        for (auto * m : {&params.ngram_simple, &params.ngram_map_k, &params.ngram_map_k4v}) {
            m->size_n = size_n;
            m->size_m = size_m;
            m->min_hits = min_hits;
        }
        params.ngram_mod.n_match = size_n;
        params.ngram_mod.n_max = size_m;
        params.ngram_mod.n_min = std::min<int32_t>(params.ngram_mod.n_min, size_m);
        for (auto t : params.types) {
            if (t != COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE && t != COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K &&
                t != COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K4V && t != COMMON_SPECULATIVE_TYPE_NGRAM_MOD) {
                put_err(err, err_len, ("not an n-gram drafter: " + common_speculative_type_to_str(t)).c_str());
                return nullptr;
            }
        }
        common_speculative * spec = common_speculative_init(params, n_seq);
        if (spec == nullptr) {
            put_err(err, err_len, "upstream made no drafter for these types");
            return nullptr;
        }
        std::unique_ptr<common_speculative, common_speculative_deleter> owned(spec);
        auto * d = new pyollama_drafter;
        d->spec = owned.release();
        d->history.resize(n_seq);
        d->result.resize(n_seq);
        d->drafted.assign(n_seq, 0);
        return d;
    } catch (const std::exception & e) {
        put_err(err, err_len, e.what());
        return nullptr;
    }
}

void pyollama_drafter_free(pyollama_drafter * d) {
    if (d) {
        common_speculative_free(d->spec);
        delete d;
    }
}

static bool bad_seq(pyollama_drafter * d, int32_t seq) {
    return d == nullptr || seq < 0 || (size_t) seq >= d->history.size();
}

int pyollama_drafter_begin(pyollama_drafter * d, int32_t seq, const llama_token * tokens, size_t n) {
    if (bad_seq(d, seq)) {
        return -1;
    }
    try {
        d->history[seq].assign(tokens, tokens + n);
        common_speculative_begin(d->spec, seq, d->history[seq]);
        return 0;
    } catch (const std::exception &) {
        return -1;
    }
}

int pyollama_drafter_push(pyollama_drafter * d, int32_t seq, const llama_token * tokens, size_t n) {
    if (bad_seq(d, seq)) {
        return -1;
    }
    try {
        d->history[seq].insert(d->history[seq].end(), tokens, tokens + n);
        return 0;
    } catch (const std::exception &) {
        return -1;
    }
}

int pyollama_drafter_draft(pyollama_drafter * d, int32_t seq, llama_token last, int32_t n_max,
                           llama_token * out, int32_t cap) {
    if (bad_seq(d, seq) || n_max <= 0) {
        return bad_seq(d, seq) ? -1 : 0;
    }
    try {
        auto & res = d->result[seq];
        res.clear();
        auto & dp = common_speculative_get_draft_params(d->spec, seq);
        dp.drafting = true;
        dp.n_max = n_max;
        dp.pos0 = (llama_pos) d->history[seq].size();
        dp.id_last = last;
        dp.prompt = &d->history[seq];
        dp.result = &res;
        common_speculative_draft(d->spec);
        int32_t n = (int32_t) std::min<size_t>(res.size(), (size_t) std::min(cap, n_max));
        for (int32_t i = 0; i < n; ++i) {
            out[i] = res[i];
        }
        d->drafted[seq] = n;
        return n;
    } catch (const std::exception &) {
        // left drafting with a result, the next draft of any sequence would trip an upstream assert
        auto & dp = common_speculative_get_draft_params(d->spec, seq);
        dp.drafting = false;
        d->result[seq].clear();
        d->drafted[seq] = 0;
        return -1;
    }
}

int pyollama_drafter_accept(pyollama_drafter * d, int32_t seq, uint16_t n_accepted) {
    // upstream aborts on an acceptance that follows no draft: refuse it here instead
    if (bad_seq(d, seq) || n_accepted > d->drafted[seq] || (d->drafted[seq] == 0 && n_accepted > 0)) {
        return -1;
    }
    try {
        d->drafted[seq] = 0;
        common_speculative_accept(d->spec, seq, n_accepted);
        return 0;
    } catch (const std::exception &) {
        return -1;
    }
}
