// Tokenizers. Vocab is what a model carries: either a byte-level BPE (see bpe.h; GGUF tokenizer.ggml.model = "gpt2",
// tokenizer.json, tiktoken files) or the SentencePiece-style vocabulary that GGUF stores for LLaMA models
// (tokenizer.ggml.model = "llama": pieces with scores, "▁" for space, byte fallback <0xNN>) and
// llama2.c's tokenizer.bin. Encoding follows SentencePiece's BPE: repeatedly merge the adjacent pair
// whose merged piece has the highest score; pieces the vocabulary lacks fall back to byte tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace llmforge {

namespace gguf { struct Metadata; }
class BpeTokenizer;

// Token kinds, numbered as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Vocab {
public:
    std::string model = "llama";         // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE) or
                                          // "bert" (WordPiece: bos is [CLS], eos is [SEP])
    std::shared_ptr<const BpeTokenizer> bpe;  // set for byte-level BPE: encoding and decoding go through it
    std::string pre;                      // BPE: tokenizer.ggml.pre, the pre-tokeniser's name
    std::vector<std::string> pieces;      // piece text, "▁" standing for a space
    std::vector<float> scores;
    std::vector<TokenType> types;
    int32_t bos = 1, eos = 2, unk = 0;
    bool add_bos = true, add_eos = false, add_space_prefix = true;
    std::string chat_template;            // Jinja (tokenizer.chat_template in GGUF); empty: none given

    int32_t size() const { return static_cast<int32_t>(pieces.size()); }
    // Builds the lookup tables; call after filling the fields. Throws a bad-input Error if inconsistent.
    void finalize();

    // Text → ids. add_special: prepend BOS (and append EOS) as the vocabulary asks.
    // parse_special: also recognise control tokens written in the text (user-defined ones always are).
    std::vector<int32_t> encode(const std::string& text, bool add_special, bool parse_special = false) const;
    // One token → its bytes (control tokens give "" unless `special`).
    std::string token_to_piece(int32_t id, bool special = false) const;
    std::string decode(const std::vector<int32_t>& ids, bool special = false) const;
    int32_t find(const std::string& piece) const;  // -1 if absent
    // Appends unused "[PAD<i>]" tokens up to n (a model's embedding table may be larger than its tokenizer).
    void pad_to(int32_t n);
    bool is_eog(int32_t id) const { return id == eos; }

    // GGUF metadata ↔ vocabulary.
    static Vocab from_gguf(const gguf::Metadata& meta, const std::string& path);
    void to_gguf(gguf::Metadata& meta) const;
    // llama2.c tokenizer.bin: i32 max_token_length, then per token: f32 score, i32 length, bytes.
    // A byte-level BPE tokenizer file (tokenizer.json, *.tiktoken, encoder.json/vocab.bpe) as a vocabulary.
    static Vocab from_bpe(const BpeTokenizer& bpe);
    // Any tokenizer file: GGUF, tokenizer.json, tiktoken, GPT-2 files, or llama2.c tokenizer.bin.
    static Vocab load(const std::string& path);
    static Vocab from_llama2c(const std::string& path, int32_t expected_size);
    void write_llama2c(const std::string& path) const;

    // Hugging Face's files. tokenizer.json: byte-level BPE as BpeTokenizer writes it, or for a SentencePiece-style
    // vocabulary the form transformers' LlamaTokenizerFast reads (BPE over "▁" pieces, byte fallback, merges by score,
    // Prepend/Replace normaliser, BOS by the post-processor). tokenizer_config.json: the special tokens, add_bos_token,
    // the chat template (vocab_hf.cpp).
    std::string to_hf_json() const;
    std::string hf_tokenizer_config(int64_t model_max_length = 0) const;
    // A tokenizer.json with a byte-fallback BPE model (LLaMA, Mistral, …) read as a SentencePiece-style vocabulary;
    // config_text: the tokenizer_config.json beside it, or "".
    static bool is_spm_hf_json(const std::string& text);
    static Vocab from_hf_spm_json(const std::string& text, const std::string& origin, const std::string& config_text = "");
    // A WordPiece tokenizer.json (BERT's uncased BertNormalizer and BertPreTokenizer; others are refused, named).
    static bool is_wordpiece_hf_json(const std::string& text);
    static Vocab from_hf_wordpiece_json(const std::string& text, const std::string& origin, const std::string& config_text = "");

private:
    void encode_spm(const std::string& text, std::vector<int32_t>& out) const;
    void encode_wpm(const std::string& text, std::vector<int32_t>& out) const;  // WordPiece (wordpiece.cpp)
    std::string wordpiece_hf_json() const;
    void resegment(const std::string& text, std::vector<int32_t>& out) const;
    std::unordered_map<std::string, int32_t> index_;
    int32_t byte_ids_[256];
    std::vector<int32_t> user_tokens_;  // tokens matched in raw text before SentencePiece (longest first)
    std::vector<int32_t> control_tokens_;
};

// The chat template of a Hugging Face tokenizer_config.json: "chat_template" as a string, or the "default" entry of a
// list of named templates; "" when there is none. Throws a bad-input Error if the file is not valid JSON.
std::string chat_template_from_tokenizer_config(const std::string& path);

}  // namespace llmforge
