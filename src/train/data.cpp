// Data preparation (clean → deduplicate → tokenise → shards) and the shuffled, resumable loader.
#include "llmforge/data.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/progress.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/utf8.h"

namespace llmforge {

namespace {

constexpr char kMagic[4] = {'L', 'F', 'T', 'K'};
constexpr size_t kHeader = 24;
constexpr int kMinHashes = 64, kBands = 16, kRows = kMinHashes / kBands;
constexpr size_t kShardTokens = 64ull << 20;

uint64_t fnv1a(const char* p, size_t n, uint64_t h = 1469598103934665603ull) {
    for (size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(p[i]);
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void make_dir(const std::string& d) {
    if (!is_directory(d) && mkdir(d.c_str(), 0755) != 0) throw_runtime("cannot create directory '%s'", d.c_str());
}

// Splits one input file into documents.
void read_documents(const std::string& path, const std::string& split, std::vector<std::string>& docs) {
    const std::string text = read_text_file(path);
    const bool jsonl = path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
    if (jsonl) {
        for (std::string& t : jsonl_texts(text, path)) docs.push_back(std::move(t));
        return;
    }
    if (split == "file") {
        docs.push_back(text);
    } else if (split == "line") {
        for (size_t p = 0; p < text.size();) {
            size_t e = text.find('\n', p);
            if (e == std::string::npos) e = text.size();
            docs.push_back(text.substr(p, e - p));
            p = e + 1;
        }
    } else if (split == "paragraph") {
        size_t p = 0;
        while (p < text.size()) {
            size_t e = text.find("\n\n", p);
            if (e == std::string::npos) e = text.size();
            docs.push_back(text.substr(p, e - p));
            p = e + 2;
            while (p < text.size() && text[p] == '\n') ++p;
        }
    } else {
        throw_bad_input("--split must be paragraph, line or file, not '%s'", split.c_str());
    }
}

}  // namespace

std::vector<std::string> jsonl_texts(const std::string& data, const std::string& origin) {
    std::vector<std::string> out;
    size_t line_no = 0;
    for (size_t p = 0; p < data.size();) {
        size_t e = data.find('\n', p);
        if (e == std::string::npos) e = data.size();
        const std::string line = data.substr(p, e - p);
        p = e + 1;
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
        } catch (const nlohmann::json::exception& ex) {
            throw_bad_input("%s:%zu: expected a JSON object with a \"text\" string (%s)", origin.c_str(), line_no, ex.what());
        }
    }
    return out;
}

// ---- cleaning ------------------------------------------------------------------------------------------------------

std::string clean_text(const std::string& text, uint64_t* control_removed, uint64_t* invalid_replaced) {
    // 1. bytes: invalid UTF-8 → U+FFFD; \r\n and lone \r → \n; C0/C1 controls other than \t and \n dropped
    std::string s;
    s.reserve(text.size());
    uint64_t ctrl = 0, bad = 0;
    for (size_t i = 0; i < text.size();) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        const size_t n = utf8_len(c);
        const std::string one = text.substr(i, n);
        if (n > 1 && (i + n > text.size() || !utf8_valid(one))) {
            s += "\xef\xbf\xbd";
            ++bad;
            ++i;
            continue;
        }
        if (n == 1 && c >= 0x80) {  // stray continuation or invalid lead byte
            s += "\xef\xbf\xbd";
            ++bad;
            ++i;
            continue;
        }
        if (c == '\r') {
            s += '\n';
            i += (i + 1 < text.size() && text[i + 1] == '\n') ? 2 : 1;
            continue;
        }
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) { ++ctrl; ++i; continue; }
        if (n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0) { ++ctrl; i += 2; continue; }  // C1 controls
        s += one;
        i += n;
    }
    // 2. NFC
    std::string t = nfc_normalize(s);
    // 3. trailing spaces of lines
    std::string out;
    out.reserve(t.size());
    size_t line_start = 0;
    for (size_t i = 0; i <= t.size(); ++i) {
        if (i == t.size() || t[i] == '\n') {
            size_t e = i;
            while (e > line_start && (t[e - 1] == ' ' || t[e - 1] == '\t')) --e;
            out.append(t, line_start, e - line_start);
            if (i < t.size()) out += '\n';
            line_start = i + 1;
        }
    }
    while (!out.empty() && out.back() == '\n') out.pop_back();
    size_t lead = 0;
    while (lead < out.size() && out[lead] == '\n') ++lead;
    out.erase(0, lead);
    if (control_removed) *control_removed += ctrl;
    if (invalid_replaced) *invalid_replaced += bad;
    return out;
}

std::vector<uint64_t> minhash_signature(const std::string& text) {
    std::vector<uint64_t> sig(kMinHashes, ~0ull);
    // character 5-grams: step over UTF-8 characters
    std::vector<size_t> starts;
    for (size_t i = 0; i < text.size(); i += utf8_len(static_cast<unsigned char>(text[i]))) starts.push_back(i);
    starts.push_back(text.size());
    const size_t k = 5;
    if (starts.size() <= k) {
        const uint64_t h = fnv1a(text.data(), text.size());
        for (int j = 0; j < kMinHashes; ++j) sig[static_cast<size_t>(j)] = mix(h ^ mix(static_cast<uint64_t>(j) + 1));
        return sig;
    }
    for (size_t s = 0; s + k < starts.size(); ++s) {
        const uint64_t h = fnv1a(text.data() + starts[s], starts[s + k] - starts[s]);
        for (int j = 0; j < kMinHashes; ++j) {
            const uint64_t v = mix(h ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(j + 1)));
            if (v < sig[static_cast<size_t>(j)]) sig[static_cast<size_t>(j)] = v;
        }
    }
    return sig;
}

// ---- shards --------------------------------------------------------------------------------------------------------

void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, int32_t vocab_size) {
    const uint32_t width = vocab_size <= 65536 ? 2 : 4;
    AtomicWriter w(path);
    w.write(kMagic, 4);
    const uint32_t version = 1, reserved = 0;
    const uint64_t n = tokens.size();
    w.write(&version, 4);
    w.write(&width, 4);
    w.write(&reserved, 4);
    w.write(&n, 8);
    if (width == 2) {
        std::vector<uint16_t> t(tokens.begin(), tokens.end());
        w.write(t.data(), t.size() * 2);
    } else {
        w.write(tokens.data(), tokens.size() * 4);
    }
    w.commit();
}

TokenShard::TokenShard(const std::string& path) : path_(path) {
    map_ = MappedFile::open(path);
    const uint8_t* p = map_->data();
    if (map_->size() < kHeader || std::memcmp(p, kMagic, 4) != 0) throw_bad_input("'%s' is not a token shard (bad header)", path.c_str());
    uint32_t version, width;
    std::memcpy(&version, p + 4, 4);
    std::memcpy(&width, p + 8, 4);
    std::memcpy(&n_, p + 16, 8);
    if (version != 1) throw_bad_input("'%s': unsupported token shard version %u", path.c_str(), version);
    if (width != 2 && width != 4) throw_bad_input("'%s': bad token width %u", path.c_str(), width);
    if (n_ > (map_->size() - kHeader) / width) throw_bad_input("'%s' is truncated: %llu tokens promised", path.c_str(), static_cast<unsigned long long>(n_));
    width_ = width;
    tokens_ = p + kHeader;
}

int32_t TokenShard::operator[](uint64_t i) const {
    if (width_ == 2) {
        uint16_t v;
        std::memcpy(&v, tokens_ + i * 2, 2);
        return v;
    }
    int32_t v;
    std::memcpy(&v, tokens_ + i * 4, 4);
    return v;
}

// ---- prepare -------------------------------------------------------------------------------------------------------

PrepareReport prepare_data(const PrepareOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    if (o.inputs.empty()) throw_bad_input("prepare: no input files");
    const BpeTokenizer tok = BpeTokenizer::load(o.tokenizer);
    int32_t eot = tok.find_added("<|endoftext|>");
    if (eot < 0) throw_bad_input("prepare: the tokenizer has no <|endoftext|> token to separate documents");
    const int n_threads = o.n_threads > 0 ? o.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    PrepareReport r;

    std::vector<std::string> docs;
    for (const std::string& f : o.inputs) {
        if (!file_exists(f)) throw_bad_input("prepare: input file '%s' does not exist", f.c_str());
        read_documents(f, o.split, docs);
    }
    r.documents_in = docs.size();
    for (const auto& d : docs) r.bytes_in += d.size();

    // clean, on all threads
    {
        Progress prog("cleaning", static_cast<double>(docs.size()), "docs", o.progress);
        std::vector<uint64_t> ctrl(static_cast<size_t>(n_threads), 0), bad(static_cast<size_t>(n_threads), 0), changed(static_cast<size_t>(n_threads), 0);
        std::vector<std::thread> th;
        std::atomic<size_t> next{0};
        for (int t = 0; t < n_threads; ++t)
            th.emplace_back([&, t] {
                for (size_t i; (i = next.fetch_add(1)) < docs.size();) {
                    std::string c = clean_text(docs[i], &ctrl[static_cast<size_t>(t)], &bad[static_cast<size_t>(t)]);
                    if (c != docs[i]) ++changed[static_cast<size_t>(t)];
                    docs[i].swap(c);
                    if (i % 4096 == 0) prog.update(static_cast<double>(i));
                }
            });
        for (auto& x : th) x.join();
        prog.update(static_cast<double>(docs.size()));
        prog.finish();
        for (int t = 0; t < n_threads; ++t) {
            r.control_chars_removed += ctrl[static_cast<size_t>(t)];
            r.invalid_bytes_replaced += bad[static_cast<size_t>(t)];
            r.normalised_docs += changed[static_cast<size_t>(t)];
        }
    }
    // drop empty and short; exact duplicates
    std::vector<size_t> keep;
    {
        std::unordered_set<uint64_t> seen;
        for (size_t i = 0; i < docs.size(); ++i) {
            if (docs[i].size() < std::max<size_t>(1, o.min_chars)) { ++r.removed_empty; continue; }
            if (o.dedup_exact) {
                const uint64_t h = fnv1a(docs[i].data(), docs[i].size()) ^ mix(docs[i].size());
                if (!seen.insert(h).second) { ++r.removed_exact_dup; continue; }
            }
            keep.push_back(i);
        }
    }
    // near duplicates: MinHash signatures (parallel), LSH bands, verify by the fraction of equal hashes
    if (o.near_dup_threshold <= 1.0 && !keep.empty()) {
        std::vector<std::vector<uint64_t>> sig(keep.size());
        Progress prog("near-duplicates", static_cast<double>(keep.size()), "docs", o.progress);
        std::vector<std::thread> th;
        std::atomic<size_t> next{0};
        for (int t = 0; t < n_threads; ++t)
            th.emplace_back([&] {
                for (size_t i; (i = next.fetch_add(1)) < keep.size();) {
                    sig[i] = minhash_signature(docs[keep[i]]);
                    if (i % 4096 == 0) prog.update(static_cast<double>(i));
                }
            });
        for (auto& x : th) x.join();
        prog.update(static_cast<double>(keep.size()));
        prog.finish();
        std::vector<std::unordered_map<uint64_t, std::vector<uint32_t>>> bands(kBands);
        std::vector<size_t> kept2;
        for (size_t i = 0; i < keep.size(); ++i) {
            bool dup = false;
            std::vector<uint64_t> keys(kBands);
            for (int b = 0; b < kBands && !dup; ++b) {
                uint64_t h = static_cast<uint64_t>(b) * 0x100000001b3ull;
                for (int rr = 0; rr < kRows; ++rr) h = mix(h ^ sig[i][static_cast<size_t>(b * kRows + rr)]);
                keys[static_cast<size_t>(b)] = h;
                auto it = bands[static_cast<size_t>(b)].find(h);
                if (it == bands[static_cast<size_t>(b)].end()) continue;
                for (uint32_t j : it->second) {
                    int same = 0;
                    for (int k = 0; k < kMinHashes; ++k) same += sig[i][static_cast<size_t>(k)] == sig[j][static_cast<size_t>(k)];
                    if (static_cast<double>(same) / kMinHashes >= o.near_dup_threshold) { dup = true; break; }
                }
            }
            if (dup) { ++r.removed_near_dup; continue; }
            for (int b = 0; b < kBands; ++b) bands[static_cast<size_t>(b)][keys[static_cast<size_t>(b)]].push_back(static_cast<uint32_t>(i));
            kept2.push_back(keep[i]);
        }
        keep.swap(kept2);
    }
    if (keep.empty()) throw_bad_input("prepare: the corpus is empty after cleaning (%llu documents in)", static_cast<unsigned long long>(r.documents_in));

    // tokenise on all threads; split train/val by a hash of the document
    make_dir(o.out_dir);
    std::vector<std::string> texts;
    texts.reserve(keep.size());
    for (size_t i : keep) texts.push_back(std::move(docs[i]));
    std::vector<std::string>().swap(docs);
    std::vector<std::vector<int32_t>> ids;
    {
        Progress prog("tokenizing", static_cast<double>(texts.size()), "docs", o.progress);
        ids.resize(texts.size());
        const size_t chunk = 4096;
        for (size_t b = 0; b < texts.size(); b += chunk) {
            std::vector<std::string> part(texts.begin() + static_cast<long>(b), texts.begin() + static_cast<long>(std::min(texts.size(), b + chunk)));
            auto out = tok.encode_batch(part, n_threads, false);
            for (size_t k = 0; k < out.size(); ++k) ids[b + k] = std::move(out[k]);
            prog.update(static_cast<double>(std::min(texts.size(), b + chunk)));
        }
        prog.finish();
    }
    std::vector<int32_t> train, val;
    int train_shards = 0;
    auto flush_train = [&](bool force) {
        if (train.empty() || (!force && train.size() < kShardTokens)) return;
        char name[64];
        std::snprintf(name, sizeof(name), "/train_%03d.bin", train_shards++);
        write_token_shard(o.out_dir + name, train, tok.size());
        r.tokens_train += train.size();
        train.clear();
    };
    for (size_t i = 0; i < texts.size(); ++i) {
        const bool is_val = static_cast<double>(mix(fnv1a(texts[i].data(), texts[i].size())) % 1000000) / 1e6 < o.val_fraction;
        std::vector<int32_t>& dst = is_val ? val : train;
        dst.insert(dst.end(), ids[i].begin(), ids[i].end());
        dst.push_back(eot);
        (is_val ? r.documents_val : r.documents_train)++;
        flush_train(false);
    }
    flush_train(true);
    if (train_shards == 0) throw_bad_input("prepare: no training documents (all went to validation)");
    if (val.empty()) {  // a tiny corpus: hold out the tail of the last shard's documents instead of nothing
        throw_bad_input("prepare: no validation documents; raise --val-fraction (%g) or give more text", o.val_fraction);
    }
    write_token_shard(o.out_dir + "/val_000.bin", val, tok.size());
    r.tokens_val = val.size();
    tok.save_hf_json(o.out_dir + "/tokenizer.json");
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const nlohmann::json rep = {{"documents_in", r.documents_in}, {"bytes_in", r.bytes_in}, {"removed_empty_or_short", r.removed_empty},
                                {"removed_exact_duplicates", r.removed_exact_dup}, {"removed_near_duplicates", r.removed_near_dup},
                                {"control_chars_removed", r.control_chars_removed}, {"invalid_bytes_replaced", r.invalid_bytes_replaced},
                                {"documents_changed_by_cleaning", r.normalised_docs}, {"documents_train", r.documents_train},
                                {"documents_val", r.documents_val}, {"tokens_train", r.tokens_train}, {"tokens_val", r.tokens_val},
                                {"vocab_size", tok.size()}, {"eot", eot}, {"near_dup_threshold", o.near_dup_threshold}, {"seconds", r.seconds}};
    const std::string js = rep.dump(1) + "\n";
    AtomicWriter w(o.out_dir + "/data.json");
    w.write(js.data(), js.size());
    w.commit();
    return r;
}

// ---- loader --------------------------------------------------------------------------------------------------------

DataLoader::DataLoader(const std::string& dir, const std::string& split, int64_t B, int64_t T, uint64_t seed, bool shuffle)
    : B_(B), T_(T), seed_(seed), shuffle_(shuffle) {
    for (int i = 0;; ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "/%s_%03d.bin", split.c_str(), i);
        if (!file_exists(dir + name)) break;
        shards_.emplace_back(dir + name);
        shard_start_.push_back(total_);
        total_ += shards_.back().size();
    }
    if (shards_.empty()) throw_bad_input("'%s' has no %s shards (run llmforge prepare)", dir.c_str(), split.c_str());
    n_windows_ = total_ > static_cast<uint64_t>(T) ? (total_ - 1) / static_cast<uint64_t>(T) : 0;
    if (n_windows_ < static_cast<uint64_t>(B))
        throw_bad_input("the %s split has %llu tokens: too few for a batch of %lld × %lld", split.c_str(), static_cast<unsigned long long>(total_),
                        static_cast<long long>(B), static_cast<long long>(T));
    shuffle_epoch();
}

void DataLoader::restrict_to(std::vector<uint64_t> windows) {
    for (uint64_t w : windows)
        if (w >= n_windows_) throw_bad_input("window %llu of a split of %llu windows", static_cast<unsigned long long>(w), static_cast<unsigned long long>(n_windows_));
    if (windows.size() < static_cast<size_t>(B_)) throw_bad_input("%zu windows: too few for a batch of %lld", windows.size(), static_cast<long long>(B_));
    subset_ = std::move(windows);
    n_windows_ = subset_.size();
    shuffle_epoch();
}

void DataLoader::shuffle_epoch() {
    order_.resize(n_windows_);
    if (subset_.empty()) std::iota(order_.begin(), order_.end(), 0);
    else order_ = subset_;
    if (shuffle_) {
        std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ull + pos_.epoch);
        for (uint64_t i = n_windows_ - 1; i > 0; --i) std::swap(order_[i], order_[rng() % (i + 1)]);
    }
}

int32_t DataLoader::token_at(uint64_t g) const {
    const size_t s = static_cast<size_t>(std::upper_bound(shard_start_.begin(), shard_start_.end(), g) - shard_start_.begin()) - 1;
    return shards_[s][g - shard_start_[s]];
}

void DataLoader::next_batch(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
    inputs.resize(static_cast<size_t>(B_ * T_));
    targets.resize(static_cast<size_t>(B_ * T_));
    last_windows_.resize(static_cast<size_t>(B_));
    for (int64_t b = 0; b < B_; ++b) {
        if (pos_.index >= n_windows_) {
            ++pos_.epoch;
            pos_.index = 0;
            shuffle_epoch();
        }
        last_windows_[static_cast<size_t>(b)] = order_[pos_.index];
        const uint64_t start = order_[pos_.index++] * static_cast<uint64_t>(T_);
        for (int64_t t = 0; t < T_; ++t) {
            inputs[static_cast<size_t>(b * T_ + t)] = token_at(start + static_cast<uint64_t>(t));
            targets[static_cast<size_t>(b * T_ + t)] = token_at(start + static_cast<uint64_t>(t) + 1);
        }
    }
}

void DataLoader::seek(Position p) {
    pos_ = p;
    shuffle_epoch();
}

std::vector<std::vector<size_t>> plan_batches(size_t n, int64_t B, bool shuffle, uint64_t rng_seed, size_t window,
                                              const std::function<size_t(size_t)>& length) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::mt19937_64 rng(rng_seed);
    if (shuffle) {
        std::shuffle(order.begin(), order.end(), rng);
        for (size_t w = 0; w < n; w += window)
            std::stable_sort(order.begin() + static_cast<long>(w), order.begin() + static_cast<long>(std::min(n, w + window)),
                             [&](size_t a, size_t b) { return length(a) > length(b); });
    }
    std::vector<std::vector<size_t>> batches;
    for (size_t k = 0; k < n; k += static_cast<size_t>(B)) {
        std::vector<size_t> b;
        // shuffled (training): the last batch wraps around to the first examples; in order (validation): it is short, so
        // that each example counts once
        const size_t rows = shuffle ? static_cast<size_t>(B) : std::min(static_cast<size_t>(B), n - k);
        for (size_t r = 0; r < rows; ++r) b.push_back(order[(k + r) % n]);
        batches.push_back(std::move(b));
    }
    if (shuffle) std::shuffle(batches.begin(), batches.end(), rng);
    return batches;
}

}  // namespace llmforge
