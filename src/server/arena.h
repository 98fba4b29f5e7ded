// The human-evaluation arena's storage and ratings: votes in SQLite (WAL, busy timeout, one UNIQUE battle id, so any
// number of threads or processes may write at once and a battle is counted once), and a Bradley–Terry leaderboard
// with bootstrap confidence intervals on the Elo scale. `llmforge arena export` turns the votes into preference pairs
// {"prompt", "chosen", "rejected"} — the format the alignment stage (reward models, DPO) reads.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace llmforge {
class SqliteDb;
}

namespace llmforge::server {

struct ArenaVote {
    int64_t id = 0;    // row id (set by the store)
    int64_t time = 0;  // unix seconds
    std::string battle, prompt, model_a, model_b, answer_a, answer_b;
    std::string winner;  // "a", "b", "tie" or "bothbad"
};

class ArenaStore {
public:
    explicit ArenaStore(const std::string& path);  // opens or creates the database (runtime Error if it cannot)
    ~ArenaStore();
    ArenaStore(const ArenaStore&) = delete;
    ArenaStore& operator=(const ArenaStore&) = delete;
    // Stores a vote; false if that battle already has one.
    bool add(const ArenaVote& v);
    std::vector<ArenaVote> all() const;
    int64_t count() const;
    const std::string& path() const { return path_; }

private:
    std::unique_ptr<SqliteDb> db_;
    std::string path_;
    mutable std::mutex mu_;
};

bool valid_winner(const std::string& w);

struct ArenaRating {
    std::string model;
    double rating = 1000, lo = 1000, hi = 1000;  // Elo scale: 1000 + 400·θ/ln 10; lo/hi: 95 % bootstrap interval
    int64_t battles = 0, wins = 0, losses = 0, ties = 0;
};

struct BradleyTerryOptions {
    double l2 = 0.01;       // ridge on θ (keeps an undefeated model's rating finite)
    int bootstrap = 200;    // resamples of the votes for the interval (0: none)
    uint64_t seed = 1;
};

// Maximum-likelihood Bradley–Terry strengths θ with P(i beats j) = σ(θi − θj); a tie or "both bad" counts half a win
// each way; penalised by l2/2·Σθ². Sorted by rating, best first.
std::vector<ArenaRating> bradley_terry(const std::vector<ArenaVote>& votes, const BradleyTerryOptions& opt = {});

}  // namespace llmforge::server
