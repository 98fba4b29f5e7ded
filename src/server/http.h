// A small asynchronous HTTP/1.1 server on Boost.Asio, with Boost.Beast's request parser.
//
// Connections are served by a few I/O threads (no thread per connection): hundreds of open streams cost a socket and
// a buffer each. A request is handed to the handler with an Exchange, through which the handler answers — at once or
// later from another thread (the engine's) — with one response or with a stream of chunks (server-sent events).
// While an answer is pending the server watches the socket, so a client that goes away is noticed at once
// (Exchange::on_close), not only at the next write.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llmforge::http {

struct Request {
    std::string method, target, path, query, body, remote;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string header(const std::string& lower_name) const {
        auto it = headers.find(lower_name);
        return it == headers.end() ? std::string() : it->second;
    }
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

const char* status_text(int status);

// One request and its answer. All methods are thread-safe; after the client has gone they do nothing.
class Exchange {
public:
    virtual ~Exchange() = default;
    virtual void reply(Response r) = 0;
    // A chunked answer (text/event-stream unless the headers say otherwise); then send() pieces and end().
    virtual void begin_stream(int status, std::vector<std::pair<std::string, std::string>> headers) = 0;
    virtual bool send(std::string chunk) = 0;  // false once the client is gone
    virtual void end() = 0;
    virtual bool closed() const = 0;
    // Called once (on an I/O thread) if the client disconnects before the answer is complete.
    virtual void on_close(std::function<void()> fn) = 0;
    // Extra fields for this request's access-log line (JSON object members, e.g. "\"prompt_tokens\":12").
    virtual void log_fields(std::string fields) = 0;
};
using ExchangePtr = std::shared_ptr<Exchange>;
using Handler = std::function<void(const Request&, const ExchangePtr&)>;

// Limits against hostile or broken clients (docs/server.md, docs/security.md). Each is a flag of `llmforge serve`.
struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                    // 0: any free port (see Server::port())
    size_t max_body = 8u << 20;         // larger bodies are answered 413
    size_t max_header_bytes = 16384;    // request line + header fields; beyond, 431
    size_t max_headers = 100;           // header fields; beyond, 431
    int io_threads = 2;
    double idle_timeout_s = 120;        // a connection that sends nothing this long (before or between requests) is closed
    double header_timeout_s = 10;       // from a request's first byte to the end of its header; then 408 (slowloris)
    double body_timeout_s = 60;         // from the end of the header to the end of the body; then 408
    size_t max_connections = 4096;      // open connections in all; a connection beyond is answered 503 and closed
    size_t max_connections_per_ip = 512;  // open connections from one client address; beyond, 503
    bool access_log = true;             // a JSON line per request on stderr
    // The body of an answer the HTTP layer gives itself (400, 408, 413, 431, 503), so it can be in the API's error
    // shape: status, message, code. Unset: plain text.
    std::function<Response(int status, const std::string& message, const std::string& code)> error_response;
};

class Server {
public:
    Server(const ServerOptions& opt, Handler handler);  // binds (throws a runtime Error naming the address if it cannot)
    ~Server();
    int port() const;
    void run();             // serves until stop(); returns when the I/O threads are done
    void stop_accepting();  // closes the listening socket; open connections go on
    void stop();            // ends everything
    size_t connections() const;
    size_t refused() const;  // connections answered 503 because of max_connections / max_connections_per_ip
    size_t answering() const;  // requests whose answer is not yet all written (or abandoned by a gone client)
    void on_signal(std::function<void(int)> fn);  // SIGINT / SIGTERM

    struct Impl;  // (public so the connection code can reach it; defined in http.cpp only)

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace llmforge::http
