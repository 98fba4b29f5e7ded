// Training data: cleaning, deduplication and tokenisation into memory-mapped token shards, and the loader that
// streams them in a seeded, shuffled, resumable order.
//
// Shard file: magic "LFTK", u32 version (1), u32 bytes per token (2 or 4), u32 reserved, u64 token count, then the
// tokens little-endian. Documents are separated by the tokenizer's end-of-text token.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap_file.h"

namespace llmforge {

class BpeTokenizer;

struct PrepareOptions {
    std::vector<std::string> inputs;   // text files (documents split at blank lines) or .jsonl with a "text" field
    std::string tokenizer;             // tokenizer file; copied into the output as tokenizer.json
    std::string out_dir;
    std::string split = "paragraph";   // how a text file is cut into documents: paragraph | line | file
    double val_fraction = 0.01;        // documents held out for validation (chosen by hash: stable)
    size_t min_chars = 1;              // shorter documents are dropped
    bool dedup_exact = true;
    double near_dup_threshold = 0.8;   // MinHash Jaccard estimate at which a document is a near-duplicate (>1: off)
    int n_threads = 0;
    bool progress = true;
};

struct PrepareReport {
    uint64_t documents_in = 0, bytes_in = 0;
    uint64_t removed_empty = 0, removed_exact_dup = 0, removed_near_dup = 0;
    uint64_t control_chars_removed = 0, invalid_bytes_replaced = 0, normalised_docs = 0;
    uint64_t documents_train = 0, documents_val = 0, tokens_train = 0, tokens_val = 0;
    double seconds = 0;
};

// Cleans (NFC, control characters, invalid UTF-8), removes exact and near duplicates (MinHash over character
// 5-grams with LSH banding), tokenises on all threads, and writes OUT/train_*.bin, OUT/val_*.bin, OUT/tokenizer.json
// and OUT/data.json (the report). Throws a bad-input Error for an empty corpus.
PrepareReport prepare_data(const PrepareOptions& opts);

// JSON lines with a "text" string each (blank lines skipped) → the texts. Bad-input Error naming the line otherwise.
std::vector<std::string> jsonl_texts(const std::string& data, const std::string& origin);

// The cleaning step alone: NFC-normalised, control characters other than \n and \t removed, invalid UTF-8 bytes
// replaced by U+FFFD, \r\n → \n, trailing spaces of lines trimmed. Counts what it changed.
std::string clean_text(const std::string& text, uint64_t* control_removed = nullptr, uint64_t* invalid_replaced = nullptr);

// 64 MinHash values of a text's character 5-grams (FNV-based, seeded): the fraction of equal values estimates Jaccard
// similarity.
std::vector<uint64_t> minhash_signature(const std::string& text);

// One memory-mapped shard.
class TokenShard {
public:
    explicit TokenShard(const std::string& path);  // checks the header; bad-input Error if malformed
    uint64_t size() const { return n_; }
    int32_t operator[](uint64_t i) const;
    const std::string& path() const { return path_; }

private:
    std::shared_ptr<MappedFile> map_;
    const uint8_t* tokens_ = nullptr;
    uint64_t n_ = 0;
    uint32_t width_ = 2;
    std::string path_;
};

// Writes a shard atomically.
void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, int32_t vocab_size);

// Batches of B windows of T+1 tokens (inputs and next-token targets) from the shards of one split, in an order
// shuffled by (seed, epoch); position() is where the next batch starts, so a run can resume exactly there.
// Where a stream of batches stands: epoch and batch index within it (saved in checkpoints).
struct DataPosition { uint64_t epoch = 0, index = 0; };

// One epoch's batches of B example indices out of n. Shuffled: the order is shuffled with `rng_seed`, windows of
// `window` examples are sorted by length (longest first) so that a batch's rows have similar lengths (little padding),
// and the batches' order is shuffled again, the last batch wrapping around to the first examples; unshuffled: in order,
// the last batch short (each example once).
std::vector<std::vector<size_t>> plan_batches(size_t n, int64_t B, bool shuffle, uint64_t rng_seed, size_t window,
                                              const std::function<size_t(size_t)>& length);

// A stream of training batches: B rows of T token ids and next-token targets (target < 0: not in the loss). T may vary
// from batch to batch (next() returns it); the trainer runs on whatever T it gets, up to the model's context.
class BatchSource {
public:
    virtual ~BatchSource() = default;
    virtual int64_t next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) = 0;  // returns T; [B*T] each
    virtual DataPosition position() const = 0;
    virtual void seek(DataPosition p) = 0;
    virtual uint64_t windows() const = 0;  // batches (validation: rows) available in one pass
    virtual uint64_t tokens() const = 0;   // tokens in the split
};

class DataLoader : public BatchSource {
public:
    DataLoader(const std::string& dir, const std::string& split, int64_t B, int64_t T, uint64_t seed, bool shuffle = true);
    void next_batch(std::vector<int32_t>& inputs, std::vector<int32_t>& targets);  // [B*T] each
    int64_t next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) override {
        next_batch(inputs, targets);
        return T_;
    }
    using Position = DataPosition;
    Position position() const override { return pos_; }
    void seek(Position p) override;
    uint64_t windows() const override { return n_windows_; }
    uint64_t tokens() const override { return total_; }
    // The windows of the last batch, one per row: window w is tokens [w·T, w·T + T] of the split.
    const std::vector<uint64_t>& last_windows() const { return last_windows_; }
    // Batches from these windows only (each below windows(); at least B of them), shuffled as before (a teacher
    // cache's subset); windows() becomes their number.
    void restrict_to(std::vector<uint64_t> windows);

private:
    void shuffle_epoch();
    std::vector<uint64_t> last_windows_, subset_;
    std::vector<TokenShard> shards_;
    std::vector<uint64_t> shard_start_;  // global token offset of each shard
    uint64_t total_ = 0, n_windows_ = 0;
    int64_t B_, T_;
    uint64_t seed_;
    bool shuffle_;
    std::vector<uint64_t> order_;
    Position pos_;
    int32_t token_at(uint64_t g) const;
};

}  // namespace llmforge
