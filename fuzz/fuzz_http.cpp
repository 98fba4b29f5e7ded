// The HTTP request reader of `llmforge serve`: Boost.Beast's parser with the server's limits and its own checks
// (field count, ambiguous lengths), over a stream of pipelined requests — the code the server runs (http_parse.h).
#include "fuzz_common.h"
#include "server/http_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    llmforge::http::ServerOptions o;
    o.max_body = 1 << 16;
    o.max_header_bytes = 4096;
    o.max_headers = 32;
    size_t requests = 0, bytes = 0;
    FUZZ_EXPECTING_ERRORS({
        const auto r = llmforge::http::parse_requests({reinterpret_cast<const char*>(data), n}, o, [&](const llmforge::http::Request& q) {
            ++requests;
            bytes += q.body.size() + q.path.size() + q.query.size();
            for (const auto& [k, v] : q.headers) bytes += k.size() + v.size();
        });
        if (r && (r.status < 400 || r.status > 499 || r.message.empty())) __builtin_trap();  // refusals are 4xx with a message
    });
    if (bytes > n + requests * 64) __builtin_trap();  // nothing read that was not sent
    return 0;
}
