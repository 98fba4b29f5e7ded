// The HTTP server's reading of a request, apart from its sockets: Boost.Beast's parser with the server's limits,
// and the checks the server adds after the header (field count, request smuggling). The server (http.cpp) and the
// fuzzer (fuzz/fuzz_http.cpp) run the very same code.
#pragma once
#include <boost/beast/http.hpp>

#include <functional>
#include <string>
#include <string_view>

#include "server/http.h"

namespace llmforge::http {

// An answer the HTTP layer gives itself, the connection closed after it; status 0: none.
struct Refusal {
    int status = 0;
    std::string message, code;
    explicit operator bool() const { return status != 0; }
};

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// A fresh parser with the body and header limits of `o`.
void configure_parser(RequestParser& p, const ServerOptions& o);
// After the header: too many fields (431), an ambiguous length — Content-Length with Transfer-Encoding, either twice,
// a Content-Length that is not plain digits, a Transfer-Encoding other than chunked — (400), a body over max_body
// (413).
Refusal check_header(const RequestParser& p, const ServerOptions& o);
// What a failed read means: 413, 431, 400 for a malformed request; status 0 when the client simply went away.
Refusal read_error(const boost::beast::error_code& ec, const ServerOptions& o);
// The parsed message as the handler sees it (names lower-cased, path and query split); the body is moved out.
Request to_request(RequestParser& p, const std::string& remote);

// Reads the requests in `bytes` one after another (pipelined) as the server would, calling `on_request` for each;
// stops at the first refusal (returned), or when the bytes end (status 0). For the fuzzer and tests.
Refusal parse_requests(std::string_view bytes, const ServerOptions& o, const std::function<void(const Request&)>& on_request);

}  // namespace llmforge::http
