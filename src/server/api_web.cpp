// The web chat's pages and the human-evaluation arena's endpoints:
//   GET  /, /arena, /*.js, /vendor/...      the embedded pages (web/) and browser libraries (StaticFiles)
//   POST /arena/api/battle {"prompt"}       two anonymous models answer the prompt, streamed side by side (SSE)
//   POST /arena/api/vote {"battle","winner"} a vote (a, b, tie, bothbad) into SQLite; the models are revealed
//   GET  /arena/api/leaderboard             Bradley–Terry ratings with 95 % bootstrap intervals
#include <deque>
#include <unordered_map>

#include "llmforge/error.h"
#include "llmforge/log.h"
#include "server/api.h"
#include "server/api_internal.h"

namespace llmforge::server {

using namespace detail;
using Clock = std::chrono::steady_clock;

namespace {

// Every page: scripts only from this server (no inline script), so text that slipped into the DOM cannot run.
const char* const kPageCsp =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

std::string html_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '&': o += "&amp;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}

}  // namespace

// Battles waiting for a vote, in memory: the newest 10,000, each for `ttl` seconds after it began.
struct Api::Battles {
    explicit Battles(double ttl_s) : ttl(std::chrono::milliseconds(static_cast<int64_t>(ttl_s * 1000))) {}
    struct Battle {
        Clock::time_point created = Clock::now();
        std::mutex mu;
        std::string prompt;
        std::string model[2];
        std::string answer[2];
        std::string finish[2];
        int done = 0;        // sides whose job ended
        bool complete = false;  // both answered to the end
        bool voted = false;
    };
    Clock::duration ttl;
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Battle>> by_id;
    std::deque<std::string> order;  // oldest first
    void expire() {  // (mu held)
        const auto now = Clock::now();
        while (!order.empty()) {
            auto it = by_id.find(order.front());
            if (order.size() <= 10000 && it != by_id.end() && now - it->second->created < ttl) break;
            if (it != by_id.end()) by_id.erase(it);
            order.pop_front();
        }
    }
    void add(const std::string& id, std::shared_ptr<Battle> b) {
        std::lock_guard<std::mutex> lk(mu);
        by_id[id] = std::move(b);
        order.push_back(id);
        expire();
    }
    std::shared_ptr<Battle> find(const std::string& id) {
        std::lock_guard<std::mutex> lk(mu);
        expire();
        auto it = by_id.find(id);
        return it == by_id.end() ? nullptr : it->second;
    }
};

void Api::init_web() {
    if (!opt_.web) return;
    static_ = std::make_unique<StaticFiles>(opt_.web_dir);
    if (!opt_.arena_db.empty()) arena_ = std::make_unique<ArenaStore>(opt_.arena_db);
    battles_ = std::make_shared<Battles>(opt_.arena_battle_ttl_s);
}

void Api::unauthorized_page(const http::ExchangePtr& ex, const std::string& message) {
    // The one page served without the key: a form that keeps the key in a same-site cookie (for the pages) and in
    // localStorage (the pages send it as a Bearer header), then reloads. Its script is allowed by a nonce.
    const std::string nonce = random_id("");
    http::Response r;
    r.status = 401;
    r.content_type = "text/html; charset=utf-8";
    r.headers = {{"WWW-Authenticate", "Bearer"},
                 {"Content-Security-Policy", "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'unsafe-inline'; form-action 'self'"},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Cache-Control", "no-store"}};
    r.body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>llmforge: API key</title>"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             "<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}input{width:100%;padding:.5rem;"
             "margin:.5rem 0;box-sizing:border-box}button{padding:.5rem 1rem}</style></head><body><h1>llmforge</h1>"
             "<p>This server needs an API key. / 此服务器需要 API 密钥。</p><p><small>" +
             html_escape(message) +
             "</small></p><form id=\"f\"><input id=\"k\" type=\"password\" autocomplete=\"current-password\" placeholder=\"API key\" autofocus>"
             "<button>Continue / 继续</button></form><script nonce=\"" +
             nonce +
             "\">document.getElementById('f').addEventListener('submit',function(e){e.preventDefault();var k=document.getElementById('k').value;"
             "localStorage.setItem('llmforge_key',k);document.cookie='llmforge_key='+encodeURIComponent(k)+'; path=/; SameSite=Strict';"
             "location.reload();});</script></body></html>";
    count("static", 401);
    ex->reply(std::move(r));
}

void Api::static_file(const http::Request& req, const http::ExchangePtr& ex) {
    if (!static_) throw ApiError{404, "Unknown request URL: GET " + req.path + ". (The web pages are off: --no-web.)", "invalid_request_error", "", "unknown_url"};
    auto f = static_->get(req.path);
    if (!f) throw ApiError{404, "Unknown request URL: GET " + req.path + ". Please check the URL for typos.", "invalid_request_error", "", "unknown_url"};
    http::Response r;
    r.status = 200;
    r.content_type = f->content_type;
    r.body = std::move(f->body);
    r.headers = {{"X-Content-Type-Options", "nosniff"}, {"Referrer-Policy", "no-referrer"}, {"Cache-Control", "no-cache"}};
    if (r.content_type.rfind("text/html", 0) == 0) {
        r.headers.emplace_back("Content-Security-Policy", kPageCsp);
        r.headers.emplace_back("X-Frame-Options", "DENY");
    }
    count("static", 200);
    ex->reply(std::move(r));
}

void Api::arena_battle(const http::Request& req, const http::ExchangePtr& ex) {
    if (!arena_) throw ApiError{404, "The arena is off: start the server with two or more models (-m A -m B) or --arena-db.", "invalid_request_error", "", "arena_off"};
    if (models_.size() < 2) bad("The arena needs at least two models: start the server with -m A -m B.", "", "arena_needs_two_models");
    const json b = parse_body(req);
    if (!has(b, "prompt")) bad("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
    if (!b["prompt"].is_string()) wrong_type("prompt", "a string", b["prompt"]);
    const std::string prompt = b["prompt"].get<std::string>();
    if (prompt.find_first_not_of(" \t\r\n") == std::string::npos) bad("Invalid 'prompt': empty.", "prompt", "invalid_value");
    if (!utf8_valid(prompt)) bad("Invalid 'prompt': not valid UTF-8.", "prompt", "invalid_value");
    const double temp = number(b, "temperature", 0.7, 0.0, 2.0);
    const int64_t max_tokens = integer(b, "max_tokens", 512, 1, INT32_MAX);
    std::mt19937_64 rng(std::random_device{}());
    const size_t i = rng() % models_.size();
    size_t j = rng() % (models_.size() - 1);
    if (j >= i) ++j;
    auto battle = std::make_shared<Battles::Battle>();
    battle->prompt = prompt;
    ServedModel* side[2] = {&models_[i], &models_[j]};
    std::vector<JobPtr> jobs;
    const uint64_t seed = rng();
    for (int k = 0; k < 2; ++k) {
        battle->model[k] = side[k]->id;
        auto job = std::make_shared<Job>();
        try {
            job->prompt = side[k]->chat->encode_prompt(json::array({{{"role", "user"}, {"content", prompt}}}));
        } catch (const Error& e) {
            bad(e.what(), "prompt", "invalid_value");
        }
        const int64_t ctx = side[k]->engine->slot_ctx(), p = static_cast<int64_t>(job->prompt.size());
        if (p + 1 > ctx)
            bad("The prompt takes " + std::to_string(p) + " tokens; model " + std::string(k == 0 ? "A" : "B") + " has room for " + std::to_string(ctx) + ".",
                "prompt", "context_length_exceeded");
        job->max_tokens = static_cast<int32_t>(std::min<int64_t>({max_tokens, ctx - p, opt_.max_tokens_limit > 0 ? opt_.max_tokens_limit : INT32_MAX}));
        job->sampling.temp = static_cast<float>(temp);
        job->sampling.top_p = 0.95f;
        job->sampling.seed = seed + static_cast<uint64_t>(k);
        job->stop_tokens = side[k]->stop_tokens;
        job->timeout_s = opt_.timeout_s;
        jobs.push_back(job);
    }
    const std::string id = random_id("battle-");
    battles_->add(id, battle);
    if (in_flight_.fetch_add(1) >= opt_.max_concurrent) {
        --in_flight_;
        throw ApiError{429, "Too many concurrent requests.", "requests", "", "rate_limit_exceeded"};
    }
    ex->begin_stream(200, {{"Cache-Control", "no-store"}});
    ex->send("data: " + dump(json{{"type", "battle"}, {"battle", id}}) + "\n\n");
    auto counters = counters_;
    auto* self = this;
    for (int k = 0; k < 2; ++k) {
        jobs[k]->on_token = [battle, ex, k](const TokenEvent& e) {
            std::lock_guard<std::mutex> lk(battle->mu);
            if (e.text.empty()) return;
            battle->answer[k] += e.text;
            ex->send("data: " + dump(json{{"type", "token"}, {"side", k == 0 ? "a" : "b"}, {"text", e.text}}) + "\n\n");
        };
        jobs[k]->on_finish = [battle, k](int, const std::string& reason) {
            std::lock_guard<std::mutex> lk(battle->mu);
            battle->finish[k] = reason;
        };
        jobs[k]->on_done = [battle, ex, k, counters, self, t0 = Clock::now()](int64_t, int64_t, const std::string& err) {
            std::lock_guard<std::mutex> lk(battle->mu);
            if (!err.empty()) battle->finish[k] = err == "cancelled" ? "cancelled" : "error";
            if (!err.empty() && err != "cancelled") ex->send("data: " + dump(json{{"type", "error"}, {"side", k == 0 ? "a" : "b"}, {"message", err}}) + "\n\n");
            if (++battle->done < 2) return;
            auto ok = [](const std::string& f) { return f == "stop" || f == "length" || f == "timeout"; };
            battle->complete = ok(battle->finish[0]) && ok(battle->finish[1]);
            ex->send("data: " + dump(json{{"type", "done"}, {"complete", battle->complete}}) + "\n\n");
            ex->end();
            counters->record("/arena/api/battle", 200, std::chrono::duration<double>(Clock::now() - t0).count());
            --self->in_flight_;
        };
    }
    cancel_on_close(ex, jobs);
    for (int k = 0; k < 2; ++k) {
        if (side[k]->engine->submit(jobs[k])) continue;
        // refused (queue full): the side that was queued is cancelled and ends the stream; else end it here
        if (k == 1) {
            jobs[0]->cancelled = true;
            std::lock_guard<std::mutex> lk(battle->mu);
            battle->finish[1] = "error";
            ++battle->done;  // the first side's on_done ends the stream
            ex->send("data: " + dump(json{{"type", "error"}, {"side", "b"}, {"message", "The server is overloaded: its queue is full."}}) + "\n\n");
            if (battle->done == 2) {
                ex->end();
                --in_flight_;
            }
            return;
        }
        ex->send("data: " + dump(json{{"type", "error"}, {"message", "The server is overloaded: its queue is full. Please retry later."}}) + "\n\n");
        ex->end();
        count("/arena/api/battle", 503);
        --in_flight_;
        return;
    }
}

void Api::arena_vote(const http::Request& req, const http::ExchangePtr& ex) {
    if (!arena_) throw ApiError{404, "The arena is off.", "invalid_request_error", "", "arena_off"};
    const json b = parse_body(req);
    for (const char* k : {"battle", "winner"}) {
        if (!has(b, k)) bad(std::string("Missing required parameter: '") + k + "'.", k, "missing_required_parameter");
        if (!b[k].is_string()) wrong_type(k, "a string", b[k]);
    }
    const std::string id = b["battle"].get<std::string>(), winner = b["winner"].get<std::string>();
    if (!valid_winner(winner)) bad("Invalid 'winner': expected 'a', 'b', 'tie' or 'bothbad'.", "winner", "invalid_value");
    auto battle = battles_->find(id);
    if (!battle) throw ApiError{404, "No battle '" + id + "' (unknown, or older than the server's --arena-battle-ttl).", "invalid_request_error", "battle", "battle_not_found"};
    ArenaVote v;
    {
        std::lock_guard<std::mutex> lk(battle->mu);
        if (!battle->complete) bad("That battle did not finish: both answers must be complete to vote.", "battle", "battle_incomplete");
        if (battle->voted) throw ApiError{409, "That battle already has a vote.", "invalid_request_error", "battle", "already_voted"};
        battle->voted = true;
        v.time = unix_now();
        v.battle = id;
        v.prompt = battle->prompt;
        v.model_a = battle->model[0];
        v.model_b = battle->model[1];
        v.answer_a = battle->answer[0];
        v.answer_b = battle->answer[1];
        v.winner = winner;
    }
    bool stored = false;
    try {
        stored = arena_->add(v);
    } catch (const Error& e) {  // the database could not be written (a full disk, a read-only file): the vote may be sent again
        {
            std::lock_guard<std::mutex> lk(battle->mu);
            battle->voted = false;
        }
        log_text(std::string("llmforge: arena: ") + e.what() + "\n");  // the path and the cause, for the operator only
        throw ApiError{503, "The vote could not be stored: the server cannot write its database now. Try again later.", "server_error", "", "vote_not_stored"};
    }
    if (!stored) throw ApiError{409, "That battle already has a vote.", "invalid_request_error", "battle", "already_voted"};
    reply(ex, 200, dump(json{{"battle", id}, {"winner", winner}, {"model_a", v.model_a}, {"model_b", v.model_b}, {"votes", arena_->count()}}),
          "/arena/api/vote");
}

void Api::arena_leaderboard(const http::ExchangePtr& ex) {
    if (!arena_) throw ApiError{404, "The arena is off.", "invalid_request_error", "", "arena_off"};
    const auto votes = arena_->all();
    json rows = json::array();
    for (const auto& r : bradley_terry(votes))
        rows.push_back({{"model", r.model}, {"rating", r.rating}, {"ci_low", r.lo}, {"ci_high", r.hi}, {"battles", r.battles},
                        {"wins", r.wins}, {"losses", r.losses}, {"ties", r.ties}});
    json served = json::array();
    for (const auto& m : models_) served.push_back(m.id);
    reply(ex, 200, dump(json{{"votes", votes.size()}, {"models", rows}, {"served", served}}), "/arena/api/leaderboard");
}

}  // namespace llmforge::server
