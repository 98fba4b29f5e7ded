#include "server/http_parse.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace llmforge::http {

namespace bh = boost::beast::http;

void configure_parser(RequestParser& p, const ServerOptions& o) {
    p.body_limit(o.max_body);
    p.header_limit(static_cast<std::uint32_t>(std::min<size_t>(o.max_header_bytes, UINT32_MAX)));
}

namespace {
Refusal too_large(const ServerOptions& o) {
    return {413, "The request body is too large: this server takes at most " + std::to_string(o.max_body) + " bytes.", "request_too_large"};
}
}  // namespace

Refusal check_header(const RequestParser& p, const ServerOptions& o) {
    const auto& h = p.get();
    // Request smuggling: a message whose length two parties could read differently is refused (RFC 9112 §6.3).
    size_t fields = 0, lengths = 0, encodings = 0;
    bool plain_length = true;  // digits only: no list ("5, 5"), sign or space (RFC 9110 §8.6 lets a server refuse them)
    for (const auto& f : h) {
        ++fields;
        if (f.name() == bh::field::content_length) {
            ++lengths;
            const auto v = f.value();
            plain_length = plain_length && !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        }
        encodings += f.name() == bh::field::transfer_encoding;
    }
    if (fields > o.max_headers) return {431, "Too many header fields: this server takes at most " + std::to_string(o.max_headers) + ".", "header_too_large"};
    if (lengths > 1 || (lengths && encodings) || !plain_length)
        return {400, "Malformed HTTP request: Content-Length and Transfer-Encoding must not both be given, nor either twice.", "bad_request"};
    if (encodings) {
        std::string te(h[bh::field::transfer_encoding]);
        for (char& c : te) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (te != "chunked") return {400, "Malformed HTTP request: the only Transfer-Encoding taken is chunked.", "bad_request"};
    }
    const auto len = p.content_length();
    if (len && *len > o.max_body) return too_large(o);
    return {};
}

Refusal read_error(const boost::beast::error_code& ec, const ServerOptions& o) {
    if (ec == bh::error::body_limit) return too_large(o);  // (the parser checks Content-Length against the limit)
    if (ec == bh::error::header_limit)
        return {431, "The request header is too large: this server takes at most " + std::to_string(o.max_header_bytes) + " bytes.", "header_too_large"};
    if (ec.category() == bh::make_error_code(bh::error::bad_method).category() && ec != bh::error::end_of_stream && ec != bh::error::partial_message &&
        ec != bh::error::need_more)
        return {400, "Malformed HTTP request: " + ec.message() + ".", "bad_request"};
    return {};
}

Request to_request(RequestParser& p, const std::string& remote) {
    auto& m = p.get();
    Request r;
    r.method = std::string(m.method_string());
    r.target = std::string(m.target());
    const auto q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) r.query = r.target.substr(q + 1);
    for (const auto& f : m) {
        std::string name(f.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(f.value());
    }
    r.body = std::move(m.body());
    r.remote = remote;
    return r;
}

Refusal parse_requests(std::string_view bytes, const ServerOptions& o, const std::function<void(const Request&)>& on_request) {
    while (!bytes.empty()) {
        RequestParser p;
        configure_parser(p, o);
        p.eager(false);
        boost::beast::error_code ec;
        // the header first, as the server reads it, then the checks, then the body
        while (!p.is_header_done()) {
            const size_t n = p.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
            bytes.remove_prefix(n);
            if (ec == bh::error::need_more && bytes.empty()) return {};
            if (ec && ec != bh::error::need_more) return read_error(ec, o);
            if (n == 0 && !p.is_header_done()) return {};
        }
        if (Refusal r = check_header(p, o)) return r;
        p.eager(true);
        while (!p.is_done()) {
            const size_t n = p.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
            bytes.remove_prefix(n);
            if (ec == bh::error::need_more && bytes.empty()) return {};
            if (ec && ec != bh::error::need_more) return read_error(ec, o);
            if (n == 0 && !p.is_done()) {
                if (p.need_eof()) {  // a body that runs to the end of the connection (not for requests: Beast ends them)
                    p.put_eof(ec);
                    if (ec) return read_error(ec, o);
                    break;
                }
                return {};
            }
        }
        on_request(to_request(p, "fuzz"));
    }
    return {};
}

}  // namespace llmforge::http
