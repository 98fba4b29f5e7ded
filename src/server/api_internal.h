// Helpers shared by the API's source files (api.cpp, api_web.cpp): OpenAI-shaped errors and typed JSON parameters.
#pragma once
#include <chrono>
#include <map>
#include <mutex>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "llmforge/utf8.h"
#include "server/api.h"
#include "server/http.h"

namespace llmforge::server::detail {

using json = nlohmann::ordered_json;

// An error answered in OpenAI's shape.
struct ApiError {
    int status;
    std::string message, type, param, code;
};
[[noreturn]] inline void bad(const std::string& msg, const std::string& param = "", const std::string& code = "") {
    throw ApiError{400, msg, "invalid_request_error", param, code};
}

inline std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

inline const char* kind(const json& v) {
    if (v.is_null()) return "null";
    if (v.is_boolean()) return "a boolean";
    if (v.is_number()) return "a number";
    if (v.is_string()) return "a string";
    if (v.is_array()) return "an array";
    return "an object";
}
[[noreturn]] inline void wrong_type(const std::string& name, const char* expected, const json& v) {
    bad("Invalid type for '" + name + "': expected " + expected + ", but got " + kind(v) + " instead.", name, "invalid_type");
}
inline bool has(const json& b, const char* k) { return b.contains(k) && !b[k].is_null(); }

inline double number(const json& b, const char* k, double dflt, double lo, double hi) {
    if (!has(b, k)) return dflt;
    const json& v = b[k];
    if (!v.is_number()) wrong_type(k, "a decimal", v);
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "Invalid '%s': expected a value between %g and %g, but got %g instead.", k, lo, hi, x);
        bad(buf, k, x < lo ? "decimal_below_min_value" : "decimal_above_max_value");
    }
    return x;
}
inline int64_t integer(const json& b, const char* k, int64_t dflt, int64_t lo, int64_t hi) {
    if (!has(b, k)) return dflt;
    const json& v = b[k];
    if (!v.is_number_integer()) wrong_type(k, "an integer", v);
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) bad(std::string("Invalid '") + k + "': the integer is too large.", k, "integer_above_max_value");
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
        bad(std::string("Invalid '") + k + "': expected a value between " + std::to_string(lo) + " and " + std::to_string(hi) + ", but got " +
                std::to_string(x) + " instead.",
            k, x < lo ? "integer_below_min_value" : "integer_above_max_value");
    return x;
}
inline bool boolean(const json& b, const char* k, bool dflt) {
    if (!has(b, k)) return dflt;
    if (!b[k].is_boolean()) wrong_type(k, "a boolean", b[k]);
    return b[k].get<bool>();
}

inline std::string random_id(const char* prefix) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    static const char* al = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string s = prefix;
    for (int i = 0; i < 24; ++i) s += al[rng() % 62];
    return s;
}
inline int64_t unix_now() { return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

inline json bytes_of(const std::string& s) {
    json a = json::array();
    for (unsigned char c : s) a.push_back(static_cast<int>(c));
    return a;
}
// A token's text for JSON: its bytes with any broken UTF-8 replaced (the exact bytes go in "bytes").
inline std::string token_text(const std::string& bytes) {
    if (utf8_valid(bytes)) return bytes;
    Utf8Stream s;
    return s.push(bytes) + s.flush();
}

inline std::string base64(const void* data, size_t n) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto* p = static_cast<const unsigned char*>(data);
    std::string o;
    o.reserve((n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t v = (p[i] << 16) | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        o += t[(v >> 18) & 63];
        o += t[(v >> 12) & 63];
        o += i + 1 < n ? t[(v >> 6) & 63] : '=';
        o += i + 2 < n ? t[v & 63] : '=';
    }
    return o;
}

inline json parse_body(const http::Request& req) {
    json b;
    try {
        b = json::parse(req.body);
    } catch (const std::exception&) {
        bad("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The "
            "OpenAI API expects a JSON payload, but what was sent was not valid JSON.)");
    }
    if (!b.is_object()) bad("The request body must be a JSON object.");
    return b;
}


// The client going away cancels the jobs (held weakly: a job's callbacks hold the exchange).
inline void cancel_on_close(const http::ExchangePtr& ex, const std::vector<JobPtr>& jobs) {
    std::vector<std::weak_ptr<Job>> wjs(jobs.begin(), jobs.end());
    ex->on_close([wjs] {
        for (auto& w : wjs)
            if (auto j = w.lock()) j->cancelled = true;
    });
}

}  // namespace llmforge::server::detail

namespace llmforge::server {
// ------------------------------------------------------------------------------------------------ counters (/metrics)
struct Api::Counters {
    std::mutex mu;
    std::map<std::pair<std::string, int>, uint64_t> requests;  // (endpoint, status) → count
    std::map<std::string, Histogram> duration;                // endpoint → seconds
    // One answered request; seconds < 0: no duration to record.
    void record(const std::string& endpoint, int status, double seconds = -1) {
        std::lock_guard<std::mutex> lk(mu);
        ++requests[{endpoint, status}];
        if (seconds >= 0)
            duration.try_emplace(endpoint, std::vector<double>{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}).first->second.observe(seconds);
    }
};

}  // namespace llmforge::server
