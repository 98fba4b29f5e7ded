// The arena's vote store under concurrency (several connections, as several server processes would have) and the
// Bradley–Terry fit's basic properties. The ratings themselves are checked against PyTorch in reference/test_arena.py.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "llmforge/error.h"
#include "server/arena.h"

using namespace llmforge;
using namespace llmforge::server;

namespace {
std::string temp_db(const char* name) {
    const auto p = std::filesystem::temp_directory_path() / (std::string("llmforge-arena-") + name + "-" + std::to_string(::getpid()) + ".db");
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(p.string() + ext);
    return p.string();
}
ArenaVote vote(const std::string& battle, const std::string& a, const std::string& b, const std::string& w) {
    ArenaVote v;
    v.time = 1;
    v.battle = battle;
    v.prompt = "p " + battle;
    v.model_a = a;
    v.model_b = b;
    v.answer_a = "answer of " + a;
    v.answer_b = "answer of " + b;
    v.winner = w;
    return v;
}
}  // namespace

TEST(Arena, ConcurrentWritersLoseNothingAndCountEachBattleOnce) {
    const std::string db = temp_db("conc");
    const int threads = 6, per = 150;
    std::atomic<int> accepted{0}, dup_accepted{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            ArenaStore store(db);  // one connection per thread: SQLite's locking, not our mutex, keeps them apart
            for (int i = 0; i < per; ++i) {
                if (store.add(vote("b" + std::to_string(t) + "-" + std::to_string(i), "m" + std::to_string(t % 3), "m" + std::to_string((t + 1) % 3),
                                   i % 4 == 0 ? "tie" : i % 2 ? "a" : "b")))
                    ++accepted;
                // every thread also votes on the same shared battles: exactly one vote per battle may stick
                if (store.add(vote("shared-" + std::to_string(i % 20), "x", "y", "a"))) ++dup_accepted;
            }
        });
    for (auto& t : ts) t.join();
    ArenaStore store(db);
    EXPECT_EQ(accepted.load(), threads * per);
    EXPECT_EQ(dup_accepted.load(), 20);
    EXPECT_EQ(store.count(), threads * per + 20);
    const auto all = store.all();
    ASSERT_EQ(all.size(), static_cast<size_t>(threads * per + 20));
    EXPECT_EQ(all[5].answer_a, "answer of " + all[5].model_a);
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(db + ext);
}

TEST(Arena, BadInput) {
    const std::string db = temp_db("bad");
    {
        ArenaStore store(db);
        EXPECT_THROW(store.add(vote("x", "a", "b", "left")), Error);
        EXPECT_EQ(store.count(), 0);
        EXPECT_TRUE(store.add(vote("x", "a", "b", "bothbad")));
        EXPECT_FALSE(store.add(vote("x", "a", "b", "a")));
    }
    // a file that is not a database: a clear error, not a crash
    const std::string junk = temp_db("junk");
    {
        std::ofstream f(junk, std::ios::binary);
        for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 131) & 0xff));
    }
    try {
        ArenaStore s(junk);
        s.all();
        FAIL() << "no error for a file that is not a database";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("arena database"), std::string::npos) << e.what();
    }
    for (const auto& p : {db, junk})
        for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(p + ext);
}

TEST(Arena, BradleyTerryProperties) {
    std::vector<ArenaVote> v;
    int n = 0;
    auto add = [&](const char* a, const char* b, const char* w, int times) {
        for (int i = 0; i < times; ++i) v.push_back(vote("g" + std::to_string(n++), a, b, w));
    };
    add("strong", "mid", "a", 30);
    add("strong", "mid", "b", 10);
    add("mid", "weak", "a", 30);
    add("mid", "weak", "b", 10);
    add("strong", "weak", "tie", 4);
    BradleyTerryOptions o;
    o.bootstrap = 300;
    const auto r = bradley_terry(v, o);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].model, "strong");
    EXPECT_EQ(r[1].model, "mid");
    EXPECT_EQ(r[2].model, "weak");
    EXPECT_NEAR(r[0].rating + r[1].rating + r[2].rating, 3000, 1e-6);  // the ridge centres the ratings
    for (const auto& x : r) {
        EXPECT_LT(x.lo, x.rating);
        EXPECT_GT(x.hi, x.rating);
    }
    EXPECT_EQ(r[1].battles, 80);
    EXPECT_EQ(r[0].ties, 4);
    // swapping sides does not change anything
    std::vector<ArenaVote> w = v;
    for (auto& x : w) {
        std::swap(x.model_a, x.model_b);
        x.winner = x.winner == "a" ? "b" : x.winner == "b" ? "a" : x.winner;
    }
    o.bootstrap = 0;
    const auto r2 = bradley_terry(w, o);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(r2[i].rating, r[i].rating, 1e-9);
    EXPECT_TRUE(bradley_terry({}, o).empty());
}
