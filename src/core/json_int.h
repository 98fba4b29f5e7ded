// Integers read from JSON that someone else wrote (tokenizer.json, safetensors headers, batch and state files).
// nlohmann's get<int>() converts whatever number is there: a float outside the target's range (6.5e+34) is undefined
// behaviour (UBSan: float-cast-overflow), an unsigned above INT64_MAX wraps. json_integer accepts only a JSON integer
// in [lo, hi] and otherwise refuses it as bad input, naming it.
#pragma once
#include <cstdint>
#include <string>

#include "llmforge/error.h"

namespace llmforge {

// what: the value's description for the message, e.g. "'tokenizer.json': token id".
template <class Json>
int64_t json_integer(const Json& v, int64_t lo, int64_t hi, const std::string& what) {
    bool ok = false;
    int64_t x = 0;
    if (v.is_number_unsigned()) {
        const uint64_t u = v.template get<uint64_t>();
        ok = u <= static_cast<uint64_t>(INT64_MAX);
        x = static_cast<int64_t>(u & static_cast<uint64_t>(INT64_MAX));
    } else if (v.is_number_integer()) {
        ok = true;
        x = v.template get<int64_t>();
    }
    if (!ok || x < lo || x > hi)
        throw_bad_input("%s %s is not an integer in [%lld, %lld]", what.c_str(), v.dump().substr(0, 40).c_str(), static_cast<long long>(lo),
                        static_cast<long long>(hi));
    return x;
}

}  // namespace llmforge
