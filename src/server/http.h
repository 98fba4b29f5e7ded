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

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;               // 0: any free port (see Server::port())
    size_t max_body = 8u << 20;    // larger bodies are answered 413
    int io_threads = 2;
    double idle_timeout_s = 120;   // a connection idle this long between requests is closed
    bool access_log = true;        // a JSON line per request on stderr
    // Answer for a body over max_body, so it can be in the API's error shape.
    std::function<Response(size_t limit)> too_large;
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
    size_t answering() const;  // requests whose answer is not yet all written (or abandoned by a gone client)
    void on_signal(std::function<void(int)> fn);  // SIGINT / SIGTERM

    struct Impl;  // (public so the connection code can reach it; defined in http.cpp only)

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace llmforge::http
