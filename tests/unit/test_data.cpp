// Data preparation pieces: cleaning, MinHash near-duplicate estimates, token shards, the loader's order.
#include <gtest/gtest.h>

#include <set>

#include "llmforge/data.h"
#include "llmforge/error.h"
#include "test_util.h"

using namespace llmforge;

TEST(Data, CleanText) {
    uint64_t ctrl = 0, bad = 0;
    EXPECT_EQ(clean_text("a\r\nb\rc\x01\x07 d  \n\n", &ctrl, &bad), "a\nb\nc d");
    EXPECT_EQ(ctrl, 2u);
    EXPECT_EQ(clean_text("caf" "e\xcc\x81", &ctrl, &bad), "caf\xc3\xa9");        // NFC
    EXPECT_EQ(clean_text("x\xff" "y\xc3", &ctrl, &bad), "x\xef\xbf\xbdy\xef\xbf\xbd");  // invalid bytes → U+FFFD
    EXPECT_EQ(bad, 2u);
    EXPECT_EQ(clean_text("\xc2\x85" "z\tw", &ctrl, &bad), "z\tw");  // C1 control dropped, tab kept
}

TEST(Data, MinHashEstimatesSimilarity) {
    const std::string a = "The quick brown fox jumps over the lazy dog, and then it runs into the forest to find its friends.";
    std::string b = a;
    b.replace(b.find("lazy"), 4, "idle");
    const std::string c = "Completely different text about tokenizers, shards, and the learning-rate schedule of AdamW.";
    auto sim = [](const std::string& x, const std::string& y) {
        const auto s = minhash_signature(x), t = minhash_signature(y);
        int same = 0;
        for (size_t i = 0; i < s.size(); ++i) same += s[i] == t[i];
        return same / static_cast<double>(s.size());
    };
    EXPECT_EQ(sim(a, a), 1.0);
    EXPECT_GT(sim(a, b), 0.6);  // true Jaccard of the 5-gram sets ≈ 0.84
    EXPECT_LT(sim(a, c), 0.2);
}

TEST(Data, ShardRoundTripAndBadHeader) {
    const std::string p = test::tmp_path("shard.bin");
    std::vector<int32_t> t = {0, 1, 65535, 7, 42};
    write_token_shard(p, t, 65536);
    TokenShard s(p);
    ASSERT_EQ(s.size(), t.size());
    for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(s[i], t[i]);
    write_token_shard(p, {70000, 3}, 100000);  // 4-byte tokens for large vocabularies
    EXPECT_EQ(TokenShard(p)[0], 70000);
    std::string b = test::read_file(p);
    b.resize(b.size() - 2);  // truncated
    std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    EXPECT_THROW(TokenShard{p}, Error);
}

// The loader visits every window once per epoch, in a seeded order, and seek() resumes exactly.
TEST(Data, LoaderOrderIsSeededAndResumable) {
    const std::string dir = test::tmp_path("loader");
    std::system(("mkdir -p " + dir).c_str());
    std::vector<int32_t> toks(1001);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i);
    write_token_shard(dir + "/train_000.bin", toks, 2000);
    DataLoader a(dir, "train", 2, 10, 7), b(dir, "train", 2, 10, 7), c(dir, "train", 2, 10, 8);
    std::vector<int32_t> in, tg, in2, tg2;
    std::set<int32_t> starts;
    for (int i = 0; i < 50; ++i) {  // 100 windows = one epoch
        a.next(in, tg);
        for (int r = 0; r < 2; ++r) {
            starts.insert(in[static_cast<size_t>(r * 10)]);
            for (int t = 0; t < 10; ++t) EXPECT_EQ(tg[static_cast<size_t>(r * 10 + t)], in[static_cast<size_t>(r * 10 + t)] + 1);
        }
    }
    EXPECT_EQ(starts.size(), 100u);
    a.next(in, tg);
    b.seek(a.position());
    for (int i = 0; i < 5; ++i) {
        a.next(in, tg);
        b.next(in2, tg2);
        EXPECT_EQ(in, in2);
    }
    DataLoader a2(dir, "train", 2, 10, 7);
    a2.next(in, tg);
    c.next(in2, tg2);
    EXPECT_NE(in, in2);  // another seed, another order
}
