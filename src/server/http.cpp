#include "server/http.h"

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "llmforge/error.h"
#include "llmforge/log.h"

namespace llmforge::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

const char* status_text(int s) {
    switch (s) {
        case 100: return "Continue";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 413: return "Payload Too Large";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Entity";
        case 429: return "Too Many Requests";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        default: return "Unknown";
    }
}

namespace {
std::string json_escape(const std::string& s) {
    std::string o;
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') { o += '\\'; o += static_cast<char>(c); }
        else if (c < 0x20 || c >= 0x7f) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
        else o += static_cast<char>(c);
    }
    return o;
}
std::string iso_now() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[80];
    std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, static_cast<int>(ms));
    return b;
}
}  // namespace

struct Server::Impl {
    ServerOptions opt;
    Handler handler;
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    net::signal_set signals{ioc};
    std::atomic<size_t> conns{0};
    std::atomic<size_t> answering{0};  // exchanges begun and not yet written out (see Session::answering_)
    std::function<void(int)> on_signal;
    void accept();
    void arm_signals();
};

class Session;

class ExchangeImpl : public Exchange {
public:
    ExchangeImpl(std::shared_ptr<Session> s) : s_(std::move(s)) {}
    void reply(Response r) override;
    void begin_stream(int status, std::vector<std::pair<std::string, std::string>> headers) override;
    bool send(std::string chunk) override;
    void end() override;
    bool closed() const override { return closed_; }
    void on_close(std::function<void()> fn) override;
    void log_fields(std::string f) override {
        std::lock_guard<std::mutex> lk(mu_);
        if (!log_.empty()) log_ += ',';
        log_ += f;
    }
    std::string log() {
        std::lock_guard<std::mutex> lk(mu_);
        return log_;
    }
    void fire_close() {
        std::function<void()> fn;
        {
            std::lock_guard<std::mutex> lk(mu_);
            closed_ = true;
            fn = std::move(close_fn_);
            close_fn_ = nullptr;
        }
        if (fn) fn();
    }
    std::shared_ptr<Session> sess() {
        std::lock_guard<std::mutex> lk(mu_);
        return s_;
    }
    void drop() {
        std::lock_guard<std::mutex> lk(mu_);
        s_.reset();
    }
    std::atomic<bool> closed_{false};
    std::atomic<bool> answered_{false};  // reply() or begin_stream() called
    std::shared_ptr<Session> s_;
    std::mutex mu_;
    std::function<void()> close_fn_;
    std::string log_;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(Server::Impl& srv, tcp::socket sock)
        : srv_(srv), strand_(sock.get_executor()), sock_(std::move(sock)), timer_(strand_) {
        ++srv_.conns;
        boost::system::error_code ec;
        const auto ep = sock_.remote_endpoint(ec);
        remote_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    ~Session() {
        set_answering(false);
        --srv_.conns;
    }

    void start() { net::dispatch(strand_, [self = shared_from_this()] { self->read_header(); }); }

    // ---- called through the strand by ExchangeImpl
    void queue_write(std::string data, bool last) {
        if (gone_) return;
        out_.push_back(std::move(data));
        if (last) finishing_ = true;
        if (!writing_) write_next();
    }
    void set_close_fn(std::function<void()> fn) {
        if (gone_) {
            if (fn) fn();
            return;
        }
        if (ex_) {
            std::lock_guard<std::mutex> lk(ex_->mu_);
            ex_->close_fn_ = std::move(fn);
        }
    }
    bool keep_alive() const { return keep_alive_; }
    net::any_io_executor& strand() { return strand_; }
    int status_ = 0;
    size_t bytes_ = 0;

private:
    void read_header() {
        parser_.emplace();
        parser_->body_limit(srv_.opt.max_body);
        parser_->header_limit(64 * 1024);
        if (!pipelined_.empty()) {  // bytes that arrived while the previous answer was pending
            auto b = buf_.prepare(pipelined_.size());
            std::memcpy(b.data(), pipelined_.data(), pipelined_.size());
            buf_.commit(pipelined_.size());
            pipelined_.clear();
        }
        arm_idle_timer();
        bh::async_read_header(sock_, buf_, *parser_, net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->on_header(ec);
        }));
    }
    void arm_idle_timer() {
        timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(srv_.opt.idle_timeout_s * 1000)));
        timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (!ec) {
                boost::system::error_code ig;
                self->sock_.shutdown(tcp::socket::shutdown_both, ig);
                self->sock_.close(ig);
            }
        });
    }
    void on_header(beast::error_code ec) {
        t0_ = Clock::now();
        if (ec == bh::error::body_limit) return too_large();  // (the parser checks Content-Length against the limit)
        if (ec) return fail_quietly();
        const auto& h = parser_->get();
        const auto len = parser_->content_length();
        if (len && *len > srv_.opt.max_body) return too_large();
        if (h[bh::field::expect] == "100-continue") {
            auto msg = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
            net::async_write(sock_, net::buffer(*msg), net::bind_executor(strand_, [self = shared_from_this(), msg](beast::error_code e, size_t) {
                if (e) return self->fail_quietly();
                self->read_body();
            }));
            return;
        }
        read_body();
    }
    void read_body() {
        bh::async_read(sock_, buf_, *parser_, net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->on_request(ec);
        }));
    }
    void too_large() {
        timer_.cancel();
        keep_alive_ = false;
        Response r = srv_.opt.too_large ? srv_.opt.too_large(srv_.opt.max_body)
                                        : Response{413, "text/plain", "request body too large\n", {}};
        req_.method = std::string(parser_->get().method_string());
        req_.path = std::string(parser_->get().target());
        begin_exchange();
        ex_->reply(std::move(r));
    }
    void on_request(beast::error_code ec) {
        if (ec == bh::error::body_limit) return too_large();
        if (ec) return fail_quietly();
        timer_.cancel();
        auto& m = parser_->get();
        req_ = Request{};
        req_.method = std::string(m.method_string());
        req_.target = std::string(m.target());
        const auto q = req_.target.find('?');
        req_.path = req_.target.substr(0, q);
        if (q != std::string::npos) req_.query = req_.target.substr(q + 1);
        for (const auto& f : m) {
            std::string name(f.name_string());
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            req_.headers[name] = std::string(f.value());
        }
        req_.body = std::move(m.body());
        req_.remote = remote_;
        keep_alive_ = m.keep_alive();
        begin_exchange();
        watch();
        try {
            srv_.handler(req_, ex_);
        } catch (const std::exception& e) {
            if (!ex_->answered_) ex_->reply(Response{500, "application/json", std::string("{\"error\":{\"message\":\"") + json_escape(e.what()) +
                                                                                  "\",\"type\":\"server_error\",\"param\":null,\"code\":null}}", {}});
        }
    }
    // An exchange counts from its request to the last byte of its answer written (or the client gone), so that a
    // graceful stop can wait for answers that the API has finished but the socket has not yet sent.
    void set_answering(bool on) {
        if (on == answering_) return;
        answering_ = on;
        if (on) ++srv_.answering;
        else --srv_.answering;
    }
    void begin_exchange() {
        set_answering(true);
        ex_ = std::make_shared<ExchangeImpl>(shared_from_this());
        status_ = 0;
        bytes_ = 0;
        finishing_ = false;
    }
    // While the answer is pending: a read that completes with an error means the client has gone.
    void watch() {
        if (watching_ || gone_) return;
        watching_ = true;
        sock_.async_read_some(net::buffer(peek_), net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
            self->watching_ = false;
            if (self->linger_) {
                self->drained_ += n;
                if (ec) {
                    boost::system::error_code ig;
                    self->sock_.close(ig);
                } else {
                    self->linger();
                }
                return;
            }
            if (ec == net::error::operation_aborted) {
                if (self->next_after_watch_) {
                    self->next_after_watch_ = false;
                    self->read_header();
                }
                return;
            }
            if (ec) return self->client_gone();
            self->pipelined_.append(self->peek_, n);
            if (self->next_after_watch_) {
                self->next_after_watch_ = false;
                self->read_header();
            } else {
                self->watch();
            }
        }));
    }
    void write_next() {
        if (out_.empty()) {
            writing_ = false;
            if (finishing_) done();
            return;
        }
        writing_ = true;
        net::async_write(sock_, net::buffer(out_.front()), net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
            if (self->gone_) return;  // (the watcher saw the client go first; out_ is cleared)
            if (ec) return self->client_gone();
            self->bytes_ += n;
            self->out_.pop_front();
            self->write_next();
        }));
    }
    void log_line() {
        if (!srv_.opt.access_log || !ex_) return;
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0_).count();
        const std::string extra = ex_->log();
        log_text(strprintf("{\"time\":\"%s\",\"remote\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"bytes\":%zu,\"ms\":%.1f%s%s%s}\n",
                     iso_now().c_str(), json_escape(remote_).c_str(), json_escape(req_.method).c_str(), json_escape(req_.path).c_str(), status_,
                     bytes_, ms, gone_ ? ",\"client_gone\":true" : "", extra.empty() ? "" : ",", extra.c_str()));
    }
    void done() {  // the answer is written
        set_answering(false);
        log_line();
        auto ex = std::move(ex_);
        if (ex) ex->drop();
        if (!keep_alive_) {
            boost::system::error_code ig;
            sock_.shutdown(tcp::socket::shutdown_send, ig);
            gone_ = true;
            if (watching_) {  // the watcher's read drains what the client still sends
                linger_ = true;
                return;
            }
            linger();
            return;
        }
        if (watching_) {
            next_after_watch_ = true;
            boost::system::error_code ig;
            sock_.cancel(ig);
        } else {
            read_header();
        }
    }
    // After an early answer (413) the client may still be sending its body: closing now would reset the connection
    // before it reads the answer. Read and discard until it is done (EOF), at most 64 MiB or 5 s.
    void linger() {
        timer_.expires_after(std::chrono::seconds(5));
        timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (!ec) {
                boost::system::error_code ig;
                self->sock_.close(ig);
            }
        });
        drain();
    }
    void drain() {
        sock_.async_read_some(net::buffer(peek_), net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
            self->drained_ += n;
            if (ec || self->drained_ > (64u << 20)) {
                boost::system::error_code ig;
                self->timer_.cancel();
                self->sock_.close(ig);
                return;
            }
            self->drain();
        }));
    }
    void client_gone() {
        set_answering(false);
        if (gone_) return;
        gone_ = true;
        out_.clear();
        writing_ = false;
        boost::system::error_code ig;
        sock_.close(ig);
        timer_.cancel();
        if (ex_) {
            auto ex = ex_;
            log_line();
            ex_.reset();
            ex->fire_close();
            ex->drop();
        }
    }
    void fail_quietly() {
        boost::system::error_code ig;
        timer_.cancel();
        sock_.close(ig);
        gone_ = true;
    }

    Server::Impl& srv_;
    net::any_io_executor strand_;  // the connection's strand (the socket was accepted on one)
    tcp::socket sock_;
    net::steady_timer timer_;
    beast::flat_buffer buf_;
    std::optional<bh::request_parser<bh::string_body>> parser_;
    std::string remote_, pipelined_;
    char peek_[1024];
    Request req_;
    std::shared_ptr<ExchangeImpl> ex_;
    std::deque<std::string> out_;
    bool linger_ = false;
    size_t drained_ = 0;
    bool answering_ = false;
    bool writing_ = false, finishing_ = false, keep_alive_ = true, watching_ = false, next_after_watch_ = false, gone_ = false;
    Clock::time_point t0_;
};

namespace {
std::string head(int status, const std::vector<std::pair<std::string, std::string>>& hs, bool keep_alive) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) + "\r\n";
    for (const auto& [k, v] : hs) h += k + ": " + v + "\r\n";
    h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    return h;
}
}  // namespace

void ExchangeImpl::reply(Response r) {
    if (answered_.exchange(true) || closed_) return;
    auto s = sess();
    if (!s) return;
    net::post(s->strand(), [s, r = std::move(r)]() mutable {
        s->status_ = r.status;
        r.headers.insert(r.headers.begin(), {"Content-Type", r.content_type});
        r.headers.emplace_back("Content-Length", std::to_string(r.body.size()));
        std::string msg = head(r.status, r.headers, s->keep_alive()) + "\r\n" + r.body;
        s->queue_write(std::move(msg), true);
    });
}

void ExchangeImpl::begin_stream(int status, std::vector<std::pair<std::string, std::string>> headers) {
    if (answered_.exchange(true) || closed_) return;
    auto s = sess();
    if (!s) return;
    net::post(s->strand(), [s, status, headers = std::move(headers)]() mutable {
        s->status_ = status;
        bool has_type = false;
        for (const auto& h : headers) has_type |= h.first == "Content-Type";
        if (!has_type) headers.insert(headers.begin(), {"Content-Type", "text/event-stream"});
        headers.emplace_back("Cache-Control", "no-cache");
        headers.emplace_back("X-Accel-Buffering", "no");
        headers.emplace_back("Transfer-Encoding", "chunked");
        s->queue_write(head(status, headers, s->keep_alive()) + "\r\n", false);
    });
}

bool ExchangeImpl::send(std::string chunk) {
    if (closed_) return false;
    if (chunk.empty()) return true;
    auto s = sess();
    if (!s) return false;
    char len[20];
    std::snprintf(len, sizeof len, "%zx\r\n", chunk.size());
    net::post(s->strand(), [s, c = std::string(len) + chunk + "\r\n"]() mutable { s->queue_write(std::move(c), false); });
    return true;
}

void ExchangeImpl::end() {
    if (closed_) return;
    auto s = sess();
    if (!s) return;
    net::post(s->strand(), [s] { s->queue_write("0\r\n\r\n", true); });
}

void ExchangeImpl::on_close(std::function<void()> fn) {
    auto s = sess();
    if (!s || closed_) {
        if (fn) fn();
        return;
    }
    net::post(s->strand(), [s, fn = std::move(fn)]() mutable { s->set_close_fn(std::move(fn)); });
}

void Server::Impl::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        if (!ec) {
            boost::system::error_code ig;
            sock.set_option(tcp::no_delay(true), ig);
            std::make_shared<Session>(*this, std::move(sock))->start();
        }
        accept();
    });
}

Server::Server(const ServerOptions& opt, Handler handler) : impl_(std::make_unique<Impl>()) {
    impl_->opt = opt;
    impl_->handler = std::move(handler);
    boost::system::error_code ec;
    const auto addr = net::ip::make_address(opt.host, ec);
    if (ec) throw_bad_input("cannot listen on '%s': not an IP address", opt.host.c_str());
    const tcp::endpoint ep(addr, static_cast<unsigned short>(opt.port));
    auto& a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw_runtime("cannot listen on %s:%d: %s", opt.host.c_str(), opt.port, ec.message().c_str());
    impl_->signals.add(SIGINT);
    impl_->signals.add(SIGTERM);
    impl_->accept();
}

Server::~Server() { stop(); }

int Server::port() const { return impl_->acceptor.is_open() ? impl_->acceptor.local_endpoint().port() : 0; }

void Server::on_signal(std::function<void(int)> fn) {
    impl_->on_signal = std::move(fn);
    impl_->arm_signals();
}

void Server::Impl::arm_signals() {
    signals.async_wait([this](beast::error_code ec, int sig) {
        if (ec) return;
        if (on_signal) on_signal(sig);
        arm_signals();
    });
}

void Server::run() {
    std::vector<std::thread> extra;
    for (int i = 1; i < impl_->opt.io_threads; ++i) extra.emplace_back([this] { impl_->ioc.run(); });
    impl_->ioc.run();
    for (auto& t : extra) t.join();
}

void Server::stop_accepting() {
    net::post(impl_->ioc, [this] {
        boost::system::error_code ig;
        impl_->acceptor.close(ig);
    });
}

void Server::stop() {
    impl_->signals.cancel();
    impl_->ioc.stop();
}

size_t Server::connections() const { return impl_->conns.load(); }

size_t Server::answering() const { return impl_->answering.load(); }


}  // namespace llmforge::http
