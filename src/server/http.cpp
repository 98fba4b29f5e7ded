#include "server/http.h"
#include "server/http_parse.h"

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <sys/resource.h>

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
        case 431: return "Request Header Fields Too Large";
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
    std::atomic<size_t> refused{0};
    std::mutex addr_mu;
    std::unordered_map<std::string, size_t> per_addr;  // open connections by client address
    // Counts a connection from `addr` in; false (nothing counted) when a limit is reached.
    bool admit(const std::string& addr) {
        std::lock_guard<std::mutex> lk(addr_mu);
        if (conns.load() >= opt.max_connections) return false;
        size_t& n = per_addr[addr];
        if (n >= opt.max_connections_per_ip) return false;
        ++n;
        ++conns;
        return true;
    }
    void release(const std::string& addr) {
        std::lock_guard<std::mutex> lk(addr_mu);
        auto it = per_addr.find(addr);
        if (it != per_addr.end() && --it->second == 0) per_addr.erase(it);
        --conns;
    }
    Response error(int status, const std::string& message, const std::string& code) const {
        if (opt.error_response) return opt.error_response(status, message, code);
        return Response{status, "text/plain", message + "\n", {}};
    }
    std::function<void(int)> on_signal;
    void accept();
    void refuse(tcp::socket sock);
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
    // (the connection was admitted under `addr`: Impl::admit)
    Session(Server::Impl& srv, tcp::socket sock, std::string addr, std::string remote)
        : srv_(srv), strand_(sock.get_executor()), sock_(std::move(sock)), timer_(strand_), addr_(std::move(addr)), remote_(std::move(remote)) {}
    ~Session() {
        set_answering(false);
        srv_.release(addr_);
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
    // A request is read in three timed stages: waiting for its first byte (idle_timeout_s: then the connection is
    // closed quietly), its header (header_timeout_s) and its body (body_timeout_s): a client that is too slow in
    // either is answered 408 and the connection closed, so a slowloris client holds a connection for seconds, not
    // forever.
    void read_header() {
        parser_.emplace();
        configure_parser(*parser_, srv_.opt);
        if (!pipelined_.empty()) {  // bytes that arrived while the previous answer was pending
            auto b = buf_.prepare(pipelined_.size());
            std::memcpy(b.data(), pipelined_.data(), pipelined_.size());
            buf_.commit(pipelined_.size());
            pipelined_.clear();
        }
        if (buf_.size() > 0) return start_header();  // the next request has begun already
        arm_timer(srv_.opt.idle_timeout_s, false);
        sock_.async_wait(tcp::socket::wait_read, net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec) {
            if (ec) return self->fail_quietly();
            self->start_header();
        }));
    }
    void start_header() {
        arm_timer(srv_.opt.header_timeout_s, true);
        bh::async_read_header(sock_, buf_, *parser_, net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->on_header(ec);
        }));
    }
    // On expiry: `answer` → the pending read is cancelled and the request answered 408; else the connection is closed.
    // (A generation number: an expiry already queued when the timer is cancelled or re-armed does nothing.)
    void arm_timer(double seconds, bool answer) {
        timed_out_ = false;
        const uint64_t gen = ++timer_gen_;
        timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
        timer_.async_wait([self = shared_from_this(), answer, gen](beast::error_code ec) {
            if (ec || gen != self->timer_gen_) return;
            boost::system::error_code ig;
            if (answer) {
                self->timed_out_ = true;
                self->sock_.cancel(ig);
                return;
            }
            self->sock_.shutdown(tcp::socket::shutdown_both, ig);
            self->sock_.close(ig);
        });
    }
    // A read that failed: a timeout, a malformed or oversized request (answered), or a gone client (closed quietly).
    void read_failed(beast::error_code ec) {
        if (timed_out_) return refuse(408, "The request was not received in time.", "request_timeout");
        if (Refusal r = read_error(ec, srv_.opt)) return refuse(r.status, r.message, r.code);
        fail_quietly();
    }
    void on_header(beast::error_code ec) {
        t0_ = Clock::now();
        if (ec) return read_failed(ec);
        if (Refusal r = check_header(*parser_, srv_.opt)) return refuse(r.status, r.message, r.code);
        const auto& h = parser_->get();
        arm_timer(srv_.opt.body_timeout_s, true);
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
    void cancel_timer() {
        ++timer_gen_;
        timer_.cancel();
    }
    // Answers the request (read in part) with an error and closes the connection after it.
    void refuse(int status, const std::string& message, const std::string& code) {
        cancel_timer();
        timed_out_ = false;
        keep_alive_ = false;
        if (parser_ && parser_->is_header_done()) {
            req_.method = std::string(parser_->get().method_string());
            req_.path = std::string(parser_->get().target());
        } else {
            req_.method = req_.path = "";
        }
        t0_ = Clock::now();
        begin_exchange();
        ex_->reply(srv_.error(status, message, code));
    }
    void on_request(beast::error_code ec) {
        if (ec) return read_failed(ec);
        cancel_timer();
        keep_alive_ = parser_->get().keep_alive();
        req_ = to_request(*parser_, remote_);
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
        const uint64_t gen = ++timer_gen_;
        timer_.expires_after(std::chrono::seconds(5));
        timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
            if (!ec && gen == self->timer_gen_) {
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
                self->cancel_timer();
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
        cancel_timer();
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
        cancel_timer();
        sock_.close(ig);
        gone_ = true;
    }

    Server::Impl& srv_;
    net::any_io_executor strand_;  // the connection's strand (the socket was accepted on one)
    tcp::socket sock_;
    net::steady_timer timer_;
    std::string addr_;
    bool timed_out_ = false;
    uint64_t timer_gen_ = 0;
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

// A connection over max_connections / max_connections_per_ip: a 503 (best effort: a client that does not read it
// still loses the connection), then closed — after at most a second, so that what the client sent can be drained
// and the answer is not lost to a reset.
void Server::Impl::refuse(tcp::socket sock) {
    ++refused;
    struct Refusal {
        tcp::socket sock;
        net::steady_timer timer;
        std::string msg;
        char sink[512];
        Refusal(tcp::socket s) : sock(std::move(s)), timer(sock.get_executor()) {}
        void drain(std::shared_ptr<Refusal> self) {
            sock.async_read_some(net::buffer(sink), [self](beast::error_code ec, size_t) {
                if (ec) return self->close();
                self->drain(self);
            });
        }
        void close() {
            boost::system::error_code ig;
            timer.cancel();
            sock.close(ig);
        }
    };
    auto r = std::make_shared<Refusal>(std::move(sock));
    Response e = error(503, "Too many connections: try again later.", "too_many_connections");
    r->msg = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + e.content_type + "\r\nContent-Length: " + std::to_string(e.body.size()) +
             "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + e.body;
    net::async_write(r->sock, net::buffer(r->msg), [r](beast::error_code ec, size_t) {
        if (ec) return r->close();
        boost::system::error_code ig;
        r->sock.shutdown(tcp::socket::shutdown_send, ig);
        r->timer.expires_after(std::chrono::seconds(1));
        r->timer.async_wait([r](beast::error_code e2) {
            if (!e2) r->close();
        });
        r->drain(r);
    });
}

void Server::Impl::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        if (!ec) {
            boost::system::error_code ig;
            sock.set_option(tcp::no_delay(true), ig);
            const auto ep = sock.remote_endpoint(ig);
            std::string addr = ig ? "?" : ep.address().to_string();
            std::string remote = ig ? "?" : addr + ":" + std::to_string(ep.port());
            if (admit(addr)) std::make_shared<Session>(*this, std::move(sock), std::move(addr), std::move(remote))->start();
            else refuse(std::move(sock));
        }
        accept();
    });
}

Server::Server(const ServerOptions& opt, Handler handler) : impl_(std::make_unique<Impl>()) {
    impl_->opt = opt;
    // Every connection is a file descriptor: take the hard limit, and keep max_connections under it (with room for
    // the model files, the arena database, logs).
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        const size_t room = rl.rlim_cur > 128 ? static_cast<size_t>(rl.rlim_cur) - 128 : 1;
        if (rl.rlim_cur != RLIM_INFINITY && impl_->opt.max_connections > room) {
            log_text(strprintf("llmforge: the open-file limit is %llu: at most %zu connections at once (not %zu)\n", static_cast<unsigned long long>(rl.rlim_cur), room,
                               impl_->opt.max_connections));
            impl_->opt.max_connections = room;
        }
    }
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

size_t Server::refused() const { return impl_->refused.load(); }

size_t Server::answering() const { return impl_->answering.load(); }


}  // namespace llmforge::http
