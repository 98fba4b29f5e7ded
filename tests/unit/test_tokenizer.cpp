// Byte-level BPE pieces that the reference corpus does not single out: split behaviours, \s semantics, NFC,
// invalid UTF-8, special tokens, streaming decode, long pieces, tokenizer.json round trip, training.
#include <gtest/gtest.h>

#include <map>

#include "core/mmap_file.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/model.h"
#include "llmforge/utf8.h"
#include "test_util.h"

using namespace llmforge;

namespace {

std::vector<std::string> byte_tokens() {
    std::vector<std::string> t;
    for (int b = 0; b < 256; ++b) t.emplace_back(1, static_cast<char>(b));
    return t;
}

BpeTokenizer splitter(const std::string& pattern, SplitBehavior b, bool invert = false) {
    return BpeTokenizer(byte_tokens(), {}, {SplitRule{pattern, b, invert}}, {});
}

// Real text to train small vocabularies on.
std::string training_text() {
    std::string t;
    for (const char* f : {"/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"}) t += test::read_file(f);
    t += "你好世界。今天天气很好，我们去公园散步吧！你好世界。🦙🦙 👩‍👩‍👧 naïve café\n";
    return t;
}

const BpeTokenizer& trained() {
    static const BpeTokenizer tok = [] {
        BpeTrainOptions o;
        o.vocab_size = 1500;
        o.progress = false;
        o.n_threads = 2;
        return train_bpe_texts({training_text()}, o);
    }();
    return tok;
}

// An independent statement of BPE's encoding rule for one piece: start from bytes, repeatedly merge the leftmost
// occurrence of the pair with the lowest merge rank.
std::vector<int32_t> plain_bpe(const BpeTokenizer& tok, const std::string& piece) {
    std::map<std::pair<int32_t, int32_t>, int32_t> rank;
    for (size_t r = 0; r < tok.merges().size(); ++r) rank.emplace(tok.merges()[r], static_cast<int32_t>(r));
    std::vector<int32_t> s;
    for (unsigned char c : piece) s.push_back(tok.find(std::string(1, static_cast<char>(c))));
    for (;;) {
        int32_t best = INT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < s.size(); ++i) {
            auto it = rank.find({s[i], s[i + 1]});
            if (it != rank.end() && it->second < best) { best = it->second; at = i; }
        }
        if (best == INT32_MAX) return s;
        s[at] = tok.find(tok.token_bytes(s[at]) + tok.token_bytes(s[at + 1]));
        s.erase(s.begin() + static_cast<long>(at) + 1);
    }
}

}  // namespace

// Hugging Face's documented example for SplitDelimiterBehavior: "the-final--countdown" split on "-".
TEST(Tokenizer, SplitBehaviors) {
    const std::string text = "the-final--countdown";
    using V = std::vector<std::string>;
    EXPECT_EQ(splitter("-", SplitBehavior::Removed).pre_tokenize(text), (V{"the", "final", "countdown"}));
    EXPECT_EQ(splitter("-", SplitBehavior::Isolated).pre_tokenize(text), (V{"the", "-", "final", "-", "-", "countdown"}));
    EXPECT_EQ(splitter("-", SplitBehavior::MergedWithPrevious).pre_tokenize(text), (V{"the-", "final-", "-", "countdown"}));
    EXPECT_EQ(splitter("-", SplitBehavior::MergedWithNext).pre_tokenize(text), (V{"the", "-final", "-", "-countdown"}));
    EXPECT_EQ(splitter("-", SplitBehavior::Contiguous).pre_tokenize(text), (V{"the", "-", "final", "--", "countdown"}));
    // inverted: what the pattern matches is content, the rest are the delimiters
    EXPECT_EQ(splitter("[a-z]+", SplitBehavior::Removed, true).pre_tokenize(text), (V{"the", "final", "countdown"}));
    EXPECT_EQ(splitter("[a-z]+", SplitBehavior::MergedWithNext, true).pre_tokenize(text), (V{"the", "-final", "--countdown"}));
}

// \s is Unicode White_Space as in the engines tokenizers were made with: U+3000 and U+0085 are, U+180E is not.
TEST(Tokenizer, WhitespaceMeansUnicodeWhiteSpace) {
    const BpeTokenizer t = splitter(R"(\s+)", SplitBehavior::Isolated);
    using V = std::vector<std::string>;
    EXPECT_EQ(t.pre_tokenize("a\xe3\x80\x80" "b"), (V{"a", "\xe3\x80\x80", "b"}));
    EXPECT_EQ(t.pre_tokenize("a\xc2\x85" "b"), (V{"a", "\xc2\x85", "b"}));
    EXPECT_EQ(t.pre_tokenize("a\xe1\xa0\x8e" "b"), (V{"a\xe1\xa0\x8e" "b"}));
    const BpeTokenizer ns = splitter(R"(\S+)", SplitBehavior::Isolated);
    EXPECT_EQ(ns.pre_tokenize("x\xe1\xa0\x8ey z"), (V{"x\xe1\xa0\x8ey", " ", "z"}));
}

TEST(Tokenizer, NfcNormalisation) {
    EXPECT_EQ(nfc_normalize("cafe\xcc\x81"), "caf\xc3\xa9");                   // e + combining acute → é
    EXPECT_EQ(nfc_normalize("\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"), "\xed\x95\x9c");  // Hangul jamo → 한
    EXPECT_EQ(nfc_normalize("a\xff" "e\xcc\x81"), "a\xff\xc3\xa9");            // invalid byte passed through
}

TEST(Tokenizer, ByteToUnicodeMapping) {
    std::string all;
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
    const std::string text = bytes_to_unicode_text(all);
    std::string back;
    ASSERT_TRUE(unicode_text_to_bytes(text, back));
    EXPECT_EQ(back, all);
    EXPECT_EQ(bytes_to_unicode_text(" "), "\xc4\xa0");  // Ġ
    EXPECT_EQ(bytes_to_unicode_text("\n"), "\xc4\x8a"); // Ċ
    EXPECT_FALSE(unicode_text_to_bytes("\xe4\xbd\xa0", back));
}

// Any bytes encode and decode back exactly, invalid UTF-8 included.
TEST(Tokenizer, InvalidUtf8RoundTrips) {
    const BpeTokenizer& t = trained();
    for (const std::string& s : {std::string("abc\xff\xfe def"), std::string("\xc3"), std::string("x\xe4\xbd"), std::string("\xed\xa0\x80 surrogate"),
                                std::string("\x80\x80\x80 license \xf5")}) {
        const auto ids = t.encode(s);
        EXPECT_EQ(t.decode(ids), s);
    }
}

TEST(Tokenizer, SpecialTokens) {
    const BpeTokenizer& t = trained();
    const int32_t end = t.find_added("<|im_end|>");
    ASSERT_GE(end, 0);
    const auto with = t.encode("hello<|im_end|>world", true);
    EXPECT_NE(std::find(with.begin(), with.end(), end), with.end());
    const auto without = t.encode("hello<|im_end|>world", false);
    EXPECT_EQ(std::find(without.begin(), without.end(), end), without.end());
    EXPECT_EQ(t.decode(without), "hello<|im_end|>world");
    EXPECT_EQ(t.decode(with, true), "helloworld");  // skip_special
    EXPECT_TRUE(t.is_special(end));
}

// Token by token, a stream shows only whole characters, and all of them by the end.
TEST(Tokenizer, StreamingDecodeNeverSplitsACharacter) {
    const BpeTokenizer& t = trained();
    const std::string text = "llama 🦙 家族 👩‍👩‍👧 naïve";
    Utf8Stream stream;
    std::string shown;
    for (int32_t id : t.encode(text)) {
        const std::string part = stream.push(t.token_bytes(id));
        EXPECT_TRUE(utf8_valid(part)) << "broken character in the stream";
        shown += part;
    }
    shown += stream.flush();
    EXPECT_EQ(shown, text);
}

// Pieces of every length — including those past the quadratic path (96 bytes) and the cache (256) — merge as the
// plain rule says.
TEST(Tokenizer, LongPiecesFollowThePlainRule) {
    const BpeTokenizer& t = trained();
    for (size_t n : {1, 2, 7, 50, 95, 96, 97, 200, 256, 257, 1000}) {
        std::string piece;
        const std::string src = "thelicenseisgrantedwithoutwarranty你好世界";
        for (size_t i = 0; piece.size() < n; ++i) piece += src[(i * 7) % src.size()];
        piece.resize(n);
        // encode through a pattern-free tokenizer with the same vocabulary, so the whole string is one piece
        std::vector<std::string> toks;
        for (int32_t i = 0; i < t.size(); ++i) toks.push_back(t.token_bytes(i));
        const BpeTokenizer whole(toks, t.merges(), {}, {});
        EXPECT_EQ(whole.encode(piece), plain_bpe(t, piece)) << "piece of " << n << " bytes";
    }
}

TEST(Tokenizer, TokenizerJsonRoundTrip) {
    const BpeTokenizer& t = trained();
    const BpeTokenizer back = BpeTokenizer::from_hf_json_text(t.to_hf_json(), "round-trip");
    EXPECT_EQ(back.size(), t.size());
    const std::string text = training_text().substr(0, 20000);
    EXPECT_EQ(back.encode(text), t.encode(text));
    EXPECT_EQ(back.find_added("<|endoftext|>"), t.find_added("<|endoftext|>"));
}

// Training: the vocabulary has the size asked for, merges compress the training text, and the result is the same
// whatever the number of threads.
TEST(Tokenizer, TrainingIsDeterministicAndCompresses) {
    BpeTrainOptions o;
    o.vocab_size = 800;
    o.progress = false;
    o.n_threads = 1;
    const std::string text = training_text();
    const BpeTokenizer one = train_bpe_texts({text}, o);
    o.n_threads = 2;
    std::vector<std::string> halves = {text.substr(0, text.size() / 2), text.substr(text.size() / 2)};
    const size_t cut = halves[0].rfind('\n') + 1;  // cut at a line so no pre-token straddles the halves
    halves = {text.substr(0, cut), text.substr(cut)};
    const BpeTokenizer two = train_bpe_texts(halves, o);
    EXPECT_EQ(one.size(), 800);
    EXPECT_EQ(one.merges(), two.merges());
    const double bytes_per_token = static_cast<double>(text.size()) / static_cast<double>(one.encode(text).size());
    EXPECT_GT(bytes_per_token, 2.5);
}

TEST(Tokenizer, GgufPreTokenizersKnown) {
    for (const char* name : {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "falcon", "starcoder", "refact", "mpt", "default"}) {
        const auto rules = BpeTokenizer::gguf_pre_rules(name);
        EXPECT_FALSE(rules.empty()) << name;
        // every pattern compiles
        EXPECT_NO_THROW((void)BpeTokenizer(byte_tokens(), {}, rules, {})) << name;
    }
    EXPECT_THROW((void)BpeTokenizer::gguf_pre_rules("no-such"), Error);
}

// A model with a byte-level BPE tokenizer keeps it through every format that can carry one: GGUF (tokens, merges,
// tokenizer.ggml.pre) and safetensors (tokenizer.json beside the weights), padded to the embedding table's size.
TEST(Tokenizer, ModelFilesCarryTheBpeTokenizer) {
    const BpeTokenizer& t = trained();
    ModelConfig cfg = preset("llama-tiny");
    cfg.n_vocab = 1536;  // larger than the tokenizer (1500), as Hugging Face models often are
    Model m = init_random(cfg, DType::F32, 7);
    m.vocab = Vocab::from_bpe(t);
    m.vocab->pad_to(1536);
    const std::string text = "The licensee may copy the Program. 你好世界 🦙";
    const auto want = t.encode(text);

    const std::string dir = test::tmp_path("bpe_st");
    save_model(m, dir);
    ASSERT_TRUE(file_exists(dir + "/tokenizer.json"));
    const Model st = load_model(dir);
    ASSERT_TRUE(st.vocab && st.vocab->bpe);
    EXPECT_EQ(st.vocab->size(), 1536);
    EXPECT_EQ(st.vocab->encode(text, false), want);

    const std::string g = test::tmp_path("bpe.gguf");
    save_model(st, g);
    const Model gm = load_model(g);
    ASSERT_TRUE(gm.vocab && gm.vocab->bpe);
    EXPECT_EQ(gm.vocab->pre, "llama-bpe");  // the GPT-4 pattern is llama.cpp's llama-bpe
    EXPECT_EQ(gm.vocab->encode(text, false), want);
    EXPECT_EQ(gm.vocab->decode(want), text);
}
