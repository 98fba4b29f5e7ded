// llmforge arena export | leaderboard: the arena's votes (llmforge serve -m A -m B ..., /arena) as preference pairs for
// the alignment stage, and the Bradley–Terry leaderboard.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "server/arena.h"

namespace llmforge::cli {

namespace {
std::vector<server::ArenaVote> read_votes(const std::string& db) {
    if (!std::filesystem::exists(db)) throw_bad_input("%s: no such file (the arena's votes: llmforge serve --arena-db)", db.c_str());
    server::ArenaStore store(db);
    return store.all();
}
}  // namespace

void add_arena(CLI::App& app) {
    auto* cmd = app.add_subcommand("arena", "the human-evaluation arena's votes: export preference pairs, leaderboard");
    cmd->require_subcommand(1);
    struct Opts {
        std::string db = "llmforge-arena.db", out;
        bool ties = false, json = false;
        int bootstrap = 1000;
        int64_t seed = 1;
    };
    auto o = std::make_shared<Opts>();

    auto* ex = cmd->add_subcommand("export", "votes as JSONL preference pairs {\"prompt\",\"chosen\",\"rejected\"} (ties and both-bad left out)");
    ex->add_option("--db", o->db, "the arena's SQLite file");
    ex->add_option("-o,--output", o->out, "JSONL file to write (written atomically; default: stdout)")->default_str("standard output");
    ex->add_flag("--ties", o->ties, "also write ties and both-bad votes, with \"tie\": true (not preference pairs: for inspection)");
    ex->callback([o] {
        const auto votes = read_votes(o->db);
        std::string text;
        size_t pairs = 0;
        for (const auto& v : votes) {
            nlohmann::ordered_json j;
            j["prompt"] = v.prompt;
            if (v.winner == "a" || v.winner == "b") {
                const bool a = v.winner == "a";
                j["chosen"] = a ? v.answer_a : v.answer_b;
                j["rejected"] = a ? v.answer_b : v.answer_a;
                j["chosen_model"] = a ? v.model_a : v.model_b;
                j["rejected_model"] = a ? v.model_b : v.model_a;
                ++pairs;
            } else if (o->ties) {
                j["chosen"] = v.answer_a;
                j["rejected"] = v.answer_b;
                j["chosen_model"] = v.model_a;
                j["rejected_model"] = v.model_b;
                j["tie"] = true;
                j["both_bad"] = v.winner == "bothbad";
            } else {
                continue;
            }
            j["battle"] = v.battle;
            j["time"] = v.time;
            text += j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
        }
        if (o->out.empty()) {
            std::fwrite(text.data(), 1, text.size(), stdout);
        } else {
            AtomicWriter w(o->out);
            w.write(text.data(), text.size());
            w.commit();
        }
        std::fprintf(stderr, "llmforge: %zu votes: %zu preference pairs written, %zu ties/both-bad %s\n", votes.size(), pairs,
                     votes.size() - pairs, o->ties ? "written with \"tie\": true" : "left out");
    });

    auto* lb = cmd->add_subcommand("leaderboard", "Bradley–Terry ratings (Elo scale) with 95% bootstrap intervals");
    lb->add_option("--db", o->db, "the arena's SQLite file");
    lb->add_option("--bootstrap", o->bootstrap, "bootstrap resamples for the intervals");
    add_seed_option(lb, o->seed, "seed of the resampling");
    lb->add_flag("--json", o->json, "JSON on stdout");
    lb->callback([o] {
        if (o->bootstrap < 0) throw_bad_input("--bootstrap must be >= 0");
        const auto votes = read_votes(o->db);
        server::BradleyTerryOptions bo;
        bo.bootstrap = o->bootstrap;
        bo.seed = seed_or_random(o->seed);
        const auto rows = server::bradley_terry(votes, bo);
        if (o->json) {
            nlohmann::ordered_json out = {{"votes", votes.size()}, {"models", nlohmann::ordered_json::array()}};
            for (const auto& r : rows)
                out["models"].push_back({{"model", r.model}, {"rating", r.rating}, {"ci_low", r.lo}, {"ci_high", r.hi}, {"battles", r.battles},
                                         {"wins", r.wins}, {"losses", r.losses}, {"ties", r.ties}});
            std::printf("%s\n", out.dump(2).c_str());
            return;
        }
        std::printf("%-4s %-24s %8s %19s %8s %6s %6s %6s\n", "rank", "model", "rating", "95% interval", "battles", "wins", "losses", "ties");
        int rank = 0;
        for (const auto& r : rows)
            std::printf("%-4d %-24s %8.1f  [%7.1f, %7.1f] %8lld %6lld %6lld %6lld\n", ++rank, r.model.c_str(), r.rating, r.lo, r.hi,
                        static_cast<long long>(r.battles), static_cast<long long>(r.wins), static_cast<long long>(r.losses),
                        static_cast<long long>(r.ties));
        std::printf("%zu votes\n", votes.size());
    });
}

}  // namespace llmforge::cli
