#include "server/arena.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "core/sqlite_db.h"
#include "llmforge/error.h"

namespace llmforge::server {


bool valid_winner(const std::string& w) { return w == "a" || w == "b" || w == "tie" || w == "bothbad"; }

ArenaStore::ArenaStore(const std::string& path) : path_(path) {
    db_ = std::make_unique<SqliteDb>(path, "arena database", true);
    db_->exec("PRAGMA journal_mode=WAL");
    db_->exec("PRAGMA synchronous=FULL");
    db_->exec("CREATE TABLE IF NOT EXISTS votes ("
              " id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, battle TEXT NOT NULL UNIQUE, prompt TEXT NOT NULL,"
              " model_a TEXT NOT NULL, model_b TEXT NOT NULL, answer_a TEXT NOT NULL, answer_b TEXT NOT NULL,"
              " winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'bothbad')))");
}

ArenaStore::~ArenaStore() = default;

bool ArenaStore::add(const ArenaVote& v) {
    if (!valid_winner(v.winner)) throw_bad_input("arena vote: winner must be a, b, tie or bothbad (got '%s')", v.winner.c_str());
    std::lock_guard<std::mutex> lk(mu_);
    SqliteStmt st(*db_, "INSERT INTO votes (time, battle, prompt, model_a, model_b, answer_a, answer_b, winner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind(1, v.time);
    const std::string* fields[] = {&v.battle, &v.prompt, &v.model_a, &v.model_b, &v.answer_a, &v.answer_b, &v.winner};
    for (int i = 0; i < 7; ++i) st.bind(i + 2, std::string_view(*fields[i]));
    int rc = 0;
    st.step(&rc);
    return rc != SQLITE_CONSTRAINT;
}

std::vector<ArenaVote> ArenaStore::all() const {
    std::lock_guard<std::mutex> lk(mu_);
    SqliteStmt st(*db_, "SELECT id, time, battle, prompt, model_a, model_b, answer_a, answer_b, winner FROM votes ORDER BY id");
    std::vector<ArenaVote> out;
    while (st.step()) {
        ArenaVote v;
        v.id = st.int64(0);
        v.time = st.int64(1);
        v.battle = st.text(2);
        v.prompt = st.text(3);
        v.model_a = st.text(4);
        v.model_b = st.text(5);
        v.answer_a = st.text(6);
        v.answer_b = st.text(7);
        v.winner = st.text(8);
        out.push_back(std::move(v));
    }
    return out;
}

int64_t ArenaStore::count() const {
    std::lock_guard<std::mutex> lk(mu_);
    SqliteStmt st(*db_, "SELECT COUNT(*) FROM votes");
    st.step();
    return st.int64(0);
}

// ------------------------------------------------------------------------------------------------ Bradley–Terry
namespace {

struct Game {
    int i, j;
    double s;  // score of i: 1 win, 0 loss, 0.5 tie
};

double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

// Newton's method on the concave penalised log-likelihood Σ [s log σ(θi−θj) + (1−s) log σ(θj−θi)] − l2/2 Σθ².
std::vector<double> fit(const std::vector<Game>& games, const std::vector<double>& weight, int k, double l2) {
    std::vector<double> th(static_cast<size_t>(k), 0.0);
    for (int it = 0; it < 100; ++it) {
        std::vector<double> g(static_cast<size_t>(k), 0.0), H(static_cast<size_t>(k * k), 0.0);
        for (size_t n = 0; n < games.size(); ++n) {
            const Game& gm = games[n];
            const double w = weight[n];
            if (w == 0) continue;
            const double p = sigmoid(th[gm.i] - th[gm.j]);
            g[gm.i] += w * (gm.s - p);
            g[gm.j] -= w * (gm.s - p);
            const double h = w * p * (1 - p);
            H[gm.i * k + gm.i] += h;
            H[gm.j * k + gm.j] += h;
            H[gm.i * k + gm.j] -= h;
            H[gm.j * k + gm.i] -= h;
        }
        for (int a = 0; a < k; ++a) {
            g[a] -= l2 * th[a];
            H[a * k + a] += l2;
        }
        // solve H·d = g (H positive definite) by Gaussian elimination with partial pivoting
        std::vector<double> A = H, d = g;
        for (int c = 0; c < k; ++c) {
            int piv = c;
            for (int r = c + 1; r < k; ++r)
                if (std::fabs(A[r * k + c]) > std::fabs(A[piv * k + c])) piv = r;
            if (piv != c) {
                for (int q = 0; q < k; ++q) std::swap(A[c * k + q], A[piv * k + q]);
                std::swap(d[c], d[piv]);
            }
            for (int r = c + 1; r < k; ++r) {
                const double f = A[r * k + c] / A[c * k + c];
                for (int q = c; q < k; ++q) A[r * k + q] -= f * A[c * k + q];
                d[r] -= f * d[c];
            }
        }
        for (int c = k - 1; c >= 0; --c) {
            for (int q = c + 1; q < k; ++q) d[c] -= A[c * k + q] * d[q];
            d[c] /= A[c * k + c];
        }
        double step = 0;
        for (int a = 0; a < k; ++a) {
            th[a] += d[a];
            step = std::max(step, std::fabs(d[a]));
        }
        if (step < 1e-12) break;
    }
    return th;
}

}  // namespace

std::vector<ArenaRating> bradley_terry(const std::vector<ArenaVote>& votes, const BradleyTerryOptions& opt) {
    std::map<std::string, int> index;
    for (const auto& v : votes) {
        index.emplace(v.model_a, 0);
        index.emplace(v.model_b, 0);
    }
    std::vector<ArenaRating> out;
    int k = 0;
    for (auto& [name, i] : index) {
        i = k++;
        ArenaRating r;
        r.model = name;
        out.push_back(r);
    }
    if (k == 0) return out;
    std::vector<Game> games;
    for (const auto& v : votes) {
        const int i = index[v.model_a], j = index[v.model_b];
        if (i == j) continue;  // a model against itself says nothing about ratings
        const double s = v.winner == "a" ? 1.0 : v.winner == "b" ? 0.0 : 0.5;
        games.push_back({i, j, s});
        ++out[i].battles;
        ++out[j].battles;
        if (s == 1.0) ++out[i].wins, ++out[j].losses;
        else if (s == 0.0) ++out[j].wins, ++out[i].losses;
        else ++out[i].ties, ++out[j].ties;
    }
    const double scale = 400.0 / std::log(10.0);
    const std::vector<double> th = fit(games, std::vector<double>(games.size(), 1.0), k, opt.l2);
    for (int a = 0; a < k; ++a) out[a].rating = out[a].lo = out[a].hi = 1000 + scale * th[a];
    if (opt.bootstrap > 0 && !games.empty()) {
        std::mt19937_64 rng(opt.seed);
        std::uniform_int_distribution<size_t> pick(0, games.size() - 1);
        std::vector<std::vector<double>> samples(static_cast<size_t>(k));
        std::vector<double> w(games.size());
        for (int b = 0; b < opt.bootstrap; ++b) {
            std::fill(w.begin(), w.end(), 0.0);
            for (size_t n = 0; n < games.size(); ++n) w[pick(rng)] += 1;  // resample with replacement: multiplicities
            const std::vector<double> t = fit(games, w, k, opt.l2);
            for (int a = 0; a < k; ++a) samples[a].push_back(1000 + scale * t[a]);
        }
        for (int a = 0; a < k; ++a) {
            auto& s = samples[a];
            std::sort(s.begin(), s.end());
            auto q = [&](double f) {
                const double pos = f * static_cast<double>(s.size() - 1);
                const size_t lo = static_cast<size_t>(pos);
                const size_t hi = std::min(lo + 1, s.size() - 1);
                return s[lo] + (pos - static_cast<double>(lo)) * (s[hi] - s[lo]);
            };
            out[a].lo = q(0.025);
            out[a].hi = q(0.975);
        }
    }
    std::sort(out.begin(), out.end(), [](const ArenaRating& x, const ArenaRating& y) { return x.rating > y.rating; });
    return out;
}

}  // namespace llmforge::server
