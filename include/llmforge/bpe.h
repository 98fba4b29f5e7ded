// Byte-level BPE: the tokenizer of GPT-2, GPT-4 (cl100k/o200k), Llama-3, Qwen and DeepSeek.
//
// Encoding a text:
//   1. added (special) tokens such as <|im_start|> are cut out first, matched literally;
//   2. the rest is normalised (NFC where the tokenizer asks for it);
//   3. pre-tokenised: regular expressions split it into pieces (words with their leading space, digit runs,
//      punctuation runs, whitespace runs…), so merges never cross a piece boundary;
//   4. each piece, as raw UTF-8 bytes, starts as one token per byte and the adjacent pair with the lowest merge rank
//      is merged until no mergeable pair is left (Sennrich et al. 2016; Radford et al. 2019).
// Every byte has a token, so any byte string — invalid UTF-8 included — encodes and decodes back exactly.
// Tokens are stored as raw bytes; GPT-2's byte→unicode mapping is applied only to read and write files.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge {

namespace gguf { struct Metadata; }

// How a Split pre-tokeniser treats what its pattern matches (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

// One regex split step of a pre-tokeniser.
struct SplitRule {
    std::string pattern;  // PCRE2 syntax with Unicode properties (\p{L}, \p{N}, look-ahead…)
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
};

// Named patterns (the `pat_str` / Split regex the published tokenizers carry).
namespace bpe_patterns {
extern const char* const gpt2;     // GPT-2, r50k/p50k
extern const char* const cl100k;   // GPT-4 / GPT-3.5 (cl100k_base), Llama-3 uses the same
extern const char* const o200k;    // GPT-4o (o200k_base)
extern const char* const qwen2;    // Qwen2/Qwen3: cl100k with single digits
}  // namespace bpe_patterns

// A token that is matched literally in the text before pre-tokenisation.
struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = true;   // control token: skipped by decode(skip_special = true)
    bool lstrip = false, rstrip = false;
};

class BpeTokenizer {
public:
    // ---- building ----------------------------------------------------------------------------------------------
    // Tokens as raw bytes (index = id). Merges as pairs of token ids in rank order (rank = index).
    // `rank_by_token`: tiktoken's rule — a pair's rank is the rank of the token it forms, and a piece that is itself a
    // token is emitted whole (also Hugging Face's `ignore_merges`).
    BpeTokenizer(std::vector<std::string> tokens, std::vector<std::pair<int32_t, int32_t>> merges,
                 std::vector<SplitRule> pre, std::vector<AddedToken> added, bool nfc = false,
                 bool whole_token_first = false, bool add_prefix_space = false);
    // tiktoken's form: tokens by rank, every token's rank its id; merges derived from the ranks.
    static BpeTokenizer from_ranks(std::vector<std::string> tokens_by_rank, std::vector<SplitRule> pre,
                                   std::vector<AddedToken> added);

    // ---- loading (each throws a bad-input Error naming the problem) ---------------------------------------------
    // Hugging Face tokenizer.json (model BPE; Split/ByteLevel/Digits/Sequence pre-tokenisers; NFC normaliser).
    static BpeTokenizer from_hf_json(const std::string& path);
    static BpeTokenizer from_hf_json_text(const std::string& json_text, const std::string& origin);
    // tiktoken rank file: one "base64(token) rank" per line. The pattern and special tokens come from the file's
    // name (cl100k_base, o200k_base, p50k_base, r50k_base, gpt2) unless `pattern` is given.
    static BpeTokenizer from_tiktoken(const std::string& path, const std::string& pattern = "",
                                      const std::map<std::string, int32_t>& special = {});
    // GPT-2's encoder.json + vocab.bpe.
    static BpeTokenizer from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);
    // The BPE vocabulary GGUF stores (tokenizer.ggml.model = gpt2); tokenizer.ggml.pre names the pre-tokeniser.
    static BpeTokenizer from_gguf(const gguf::Metadata& meta, const std::string& origin);
    // Any of the above, chosen by content/extension.
    static BpeTokenizer load(const std::string& path);
    // The pre-tokeniser rules for a GGUF `tokenizer.ggml.pre` name; throws for an unknown name.
    static std::vector<SplitRule> gguf_pre_rules(const std::string& name);

    // ---- writing ------------------------------------------------------------------------------------------------
    std::string to_hf_json() const;                 // a standard tokenizer.json
    void save_hf_json(const std::string& path) const;  // atomically

    // ---- use ----------------------------------------------------------------------------------------------------
    // allow_special: match special added tokens in the text (tiktoken's allowed_special="all"); otherwise they are plain
    // text. Added tokens that are not special (user-defined) are always matched, as Hugging Face and llama.cpp do.
    std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
    // Many texts on n_threads threads (0 = all cores); same ids as encode() on each.
    std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts, int n_threads = 0,
                                                   bool allow_special = true) const;
    // Ids → bytes. Throws a bad-input Error for an id out of range.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
    const std::string& token_bytes(int32_t id) const;  // raw bytes of one token
    std::string token_text(int32_t id) const;          // as tokenizer.json writes it (byte→unicode mapped)
    int32_t size() const;
    int32_t find(std::string_view bytes) const;         // -1 if absent
    int32_t find_added(std::string_view content) const; // -1 if absent
    bool is_special(int32_t id) const;
    const std::vector<AddedToken>& added_tokens() const;
    const std::vector<SplitRule>& pre_rules() const;
    const std::vector<std::pair<int32_t, int32_t>>& merges() const;
    bool nfc() const;

    // The pre-tokeniser alone: the pieces BPE will see (after NFC). For tests and for training.
    std::vector<std::string> pre_tokenize(std::string_view text) const;

    struct Impl;

private:
    explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

// GPT-2's reversible byte → printable-unicode mapping used by tokenizer.json, vocab.bpe and GGUF.
std::string bytes_to_unicode_text(std::string_view bytes);
// The inverse; returns false if a character is not in the mapping.
bool unicode_text_to_bytes(std::string_view text, std::string& out);

// Unicode NFC normalisation (utf8proc). Invalid UTF-8 runs are passed through unchanged.
std::string nfc_normalize(std::string_view text);

}  // namespace llmforge

// ---- training ------------------------------------------------------------------------------------------------------
namespace llmforge {

struct BpeTrainOptions {
    int32_t vocab_size = 32000;                  // bytes (256) + merges + special tokens
    std::string pattern = bpe_patterns::cl100k;  // the pre-tokeniser (GPT-4's by default)
    std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    uint64_t min_frequency = 2;                  // stop when the best pair occurs fewer times
    int n_threads = 0;                           // 0: all cores
    bool nfc = false;                            // NFC-normalise the text (and at encode time)
    bool progress = true;                        // progress lines on stderr
};

struct BpeTrainStats {
    uint64_t bytes = 0, pieces = 0, unique_pieces = 0, merges = 0;
    double seconds_count = 0, seconds_merge = 0;
    uint64_t peak_rss = 0;
};

// Learns merges from text files: pre-token frequencies are counted in parallel over blocks of the input (special
// tokens written in the text are cut out first), then pairs are merged most-frequent-first with incremental pair
// counts (each merge updates only the words that contain the pair). Memory is bounded by the distinct pre-tokens.
BpeTokenizer train_bpe(const std::vector<std::string>& files, const BpeTrainOptions& opts, BpeTrainStats* stats = nullptr);
// The same on texts in memory.
BpeTokenizer train_bpe_texts(const std::vector<std::string>& texts, const BpeTrainOptions& opts, BpeTrainStats* stats = nullptr);

}  // namespace llmforge
