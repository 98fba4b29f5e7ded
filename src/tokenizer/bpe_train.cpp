// Byte-level BPE training (Sennrich et al. 2016, on bytes as in GPT-2).
//
//   1. count:  split the text into pre-tokens with the pattern, count each distinct pre-token (in parallel, per block);
//   2. merge:  every distinct pre-token is a word of byte symbols weighted by its count. Repeatedly take the adjacent
//              pair with the highest total count, make it a new token, and rewrite the words that contain it.
// Pair counts are kept up to date incrementally: rewriting an occurrence "x a b y" → "x ab y" takes c (the word's
// count) from (x,a), (a,b), (b,y) and gives it to (x,ab), (ab,y). A max-heap holds candidate pairs; entries whose count
// changed since they were pushed are re-pushed with the current count when they surface ("lazy" deletion).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include "core/progress.h"
#include "llmforge/error.h"
#include "tokenizer/bpe_impl.h"

namespace llmforge {

namespace {

using Counts = std::unordered_map<std::string, uint64_t>;

struct Counter {
    const BpeTrainOptions& opts;
    detail::RegexSplitter splitter;
    std::vector<std::string> specials;

    explicit Counter(const BpeTrainOptions& o) : opts(o), splitter(SplitRule{o.pattern, SplitBehavior::Isolated, false}), specials(o.special_tokens) {}

    // Counts the pre-tokens of one block of text into `counts`; special tokens in the text are boundaries.
    void count(std::string_view text, Counts& counts, uint64_t& pieces) const {
        std::string norm;
        if (opts.nfc) { norm = nfc_normalize(text); text = norm; }
        std::vector<std::pair<size_t, size_t>> off;
        size_t start = 0;
        while (start < text.size()) {
            size_t hit = std::string_view::npos, hit_len = 0;
            for (const std::string& s : specials) {
                const size_t p = text.find(s, start);
                if (p < hit) { hit = p; hit_len = s.size(); }
            }
            const size_t end = hit == std::string_view::npos ? text.size() : hit;
            off.clear();
            splitter.split(text.substr(start, end - start), start, off);
            for (const auto& [b, e] : off) ++counts[std::string(text.substr(b, e - b))];
            pieces += off.size();
            start = hit == std::string_view::npos ? text.size() : end + hit_len;
        }
    }
};

void merge_counts(Counts& into, Counts& from) {
    if (into.size() < from.size()) into.swap(from);
    for (auto& [k, v] : from) into[k] += v;
    Counts().swap(from);
}

// Reads files in blocks cut at newlines and counts them on n threads, one block per thread at a time.
Counts count_files(const std::vector<std::string>& files, const BpeTrainOptions& opts, int n_threads, BpeTrainStats& st) {
    uint64_t total = 0;
    for (const std::string& f : files) {
        std::ifstream in(f, std::ios::binary | std::ios::ate);
        if (!in) throw_bad_input("cannot open training file '%s'", f.c_str());
        total += static_cast<uint64_t>(in.tellg());
    }
    const Counter counter(opts);
    std::vector<Counts> per(static_cast<size_t>(n_threads));
    std::vector<uint64_t> pieces(static_cast<size_t>(n_threads), 0);
    Progress progress("counting pre-tokens", static_cast<double>(total), "B", opts.progress);
    constexpr size_t kBlock = 8u << 20;
    std::string carry;
    std::vector<std::string> blocks;
    uint64_t done = 0;
    auto run_blocks = [&] {
        std::vector<std::thread> th;
        std::exception_ptr err;
        std::mutex mu;
        for (size_t t = 0; t < blocks.size(); ++t)
            th.emplace_back([&, t] {
                try {
                    counter.count(blocks[t], per[t], pieces[t]);
                } catch (...) {
                    std::lock_guard<std::mutex> l(mu);
                    err = std::current_exception();
                }
            });
        for (auto& x : th) x.join();
        if (err) std::rethrow_exception(err);
        for (const auto& b : blocks) done += b.size();
        progress.update(static_cast<double>(done));
        blocks.clear();
    };
    for (const std::string& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::string buf(kBlock, '\0');
        while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(kBlock));
            const size_t got = static_cast<size_t>(in.gcount());
            if (got == 0) break;
            std::string block = std::move(carry);
            block.append(buf.data(), got);
            carry.clear();
            const size_t nl = block.rfind('\n');
            if (nl != std::string::npos && nl + 1 < block.size() && in) {  // keep a partial last line for the next block
                carry = block.substr(nl + 1);
                block.resize(nl + 1);
            }
            blocks.push_back(std::move(block));
            if (static_cast<int>(blocks.size()) == n_threads) run_blocks();
        }
        if (!carry.empty()) { blocks.push_back(std::move(carry)); carry.clear(); }  // a file ends a line
        if (static_cast<int>(blocks.size()) == n_threads) run_blocks();
    }
    if (!blocks.empty()) run_blocks();
    progress.finish();
    st.bytes = total;
    for (uint64_t p : pieces) st.pieces += p;
    for (size_t t = 1; t < per.size(); ++t) merge_counts(per[0], per[t]);
    return std::move(per[0]);
}

Counts count_texts(const std::vector<std::string>& texts, const BpeTrainOptions& opts, int n_threads, BpeTrainStats& st) {
    const Counter counter(opts);
    std::vector<Counts> per(static_cast<size_t>(n_threads));
    std::vector<uint64_t> pieces(static_cast<size_t>(n_threads), 0);
    std::vector<std::thread> th;
    for (int t = 0; t < n_threads; ++t)
        th.emplace_back([&, t] {
            for (size_t i = static_cast<size_t>(t); i < texts.size(); i += static_cast<size_t>(n_threads))
                counter.count(texts[i], per[static_cast<size_t>(t)], pieces[static_cast<size_t>(t)]);
        });
    for (auto& x : th) x.join();
    for (const auto& t : texts) st.bytes += t.size();
    for (uint64_t p : pieces) st.pieces += p;
    for (size_t t = 1; t < per.size(); ++t) merge_counts(per[0], per[t]);
    return std::move(per[0]);
}

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

BpeTokenizer learn_merges(Counts&& counts, const BpeTrainOptions& opts, BpeTrainStats& st) {
    const auto t0 = std::chrono::steady_clock::now();
    const int32_t n_special = static_cast<int32_t>(opts.special_tokens.size());
    const int32_t n_merges = opts.vocab_size - 256 - n_special;
    if (n_merges < 0) throw_bad_input("--vocab-size %d is below the 256 byte tokens plus %d special tokens", opts.vocab_size, n_special);

    // Words as byte symbols, stored flat; each word shrinks in place as it is merged.
    struct Word { uint64_t off; uint32_t len; uint64_t count; };
    std::vector<Word> words;
    std::vector<int32_t> sym;
    words.reserve(counts.size());
    {
        // sort for a deterministic order independent of hashing and thread count
        std::vector<std::pair<std::string, uint64_t>> sorted(counts.begin(), counts.end());
        Counts().swap(counts);
        std::sort(sorted.begin(), sorted.end());
        for (const auto& [w, c] : sorted) {
            words.push_back(Word{sym.size(), static_cast<uint32_t>(w.size()), c});
            for (unsigned char ch : w) sym.push_back(ch);
        }
    }
    st.unique_pieces = words.size();

    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<uint32_t>> where;
    pair_count.reserve(1 << 20);
    for (uint32_t w = 0; w < words.size(); ++w) {
        const Word& wd = words[w];
        for (uint32_t i = 0; i + 1 < wd.len; ++i) {
            const uint64_t k = pair_key(sym[wd.off + i], sym[wd.off + i + 1]);
            pair_count[k] += static_cast<int64_t>(wd.count);
            auto& v = where[k];
            if (v.empty() || v.back() != w) v.push_back(w);
        }
    }
    struct Cand {
        int64_t count;
        uint64_t key;
        // the highest count first; ties: the smaller pair of ids (older tokens) first
        bool operator<(const Cand& o) const { return count != o.count ? count < o.count : key > o.key; }
    };
    std::priority_queue<Cand> heap;
    for (const auto& [k, c] : pair_count) heap.push(Cand{c, k});

    std::vector<std::string> tokens(256);
    for (int b = 0; b < 256; ++b) tokens[static_cast<size_t>(b)] = std::string(1, static_cast<char>(b));
    std::vector<std::pair<int32_t, int32_t>> merges;
    std::vector<uint32_t> stamp(words.size(), UINT32_MAX);
    std::vector<uint64_t> touched;
    Progress progress("merging", static_cast<double>(n_merges), "merges", opts.progress);
    while (static_cast<int32_t>(merges.size()) < n_merges && !heap.empty()) {
        const Cand top = heap.top();
        heap.pop();
        auto pc = pair_count.find(top.key);
        const int64_t cur = pc == pair_count.end() ? 0 : pc->second;
        if (cur != top.count) {  // stale
            if (cur > 0) heap.push(Cand{cur, top.key});
            continue;
        }
        if (static_cast<uint64_t>(cur) < opts.min_frequency) break;
        const int32_t a = static_cast<int32_t>(top.key >> 32), b = static_cast<int32_t>(top.key & 0xffffffffu);
        const int32_t id = static_cast<int32_t>(tokens.size());
        tokens.push_back(tokens[static_cast<size_t>(a)] + tokens[static_cast<size_t>(b)]);
        merges.emplace_back(a, b);
        const uint32_t m = static_cast<uint32_t>(merges.size());

        std::vector<uint32_t> ws = std::move(where[top.key]);
        where.erase(top.key);
        touched.clear();
        auto add = [&](int32_t x, int32_t y, int64_t c, uint32_t w) {
            const uint64_t k = pair_key(x, y);
            int64_t& v = pair_count[k];
            v += c;
            if (c > 0) {
                touched.push_back(k);
                auto& list = where[k];
                if (list.empty() || list.back() != w) list.push_back(w);
            }
        };
        for (uint32_t w : ws) {
            if (stamp[w] == m) continue;
            stamp[w] = m;
            Word& wd = words[w];
            int32_t* s = sym.data() + wd.off;
            const int64_t c = static_cast<int64_t>(wd.count);
            uint32_t j = 0;
            for (uint32_t i = 0; i < wd.len;) {
                if (i + 1 < wd.len && s[i] == a && s[i + 1] == b) {
                    if (j > 0) { add(s[j - 1], a, -c, w); add(s[j - 1], id, c, w); }
                    if (i + 2 < wd.len) { add(b, s[i + 2], -c, w); add(id, s[i + 2], c, w); }
                    s[j++] = id;
                    i += 2;
                } else {
                    s[j++] = s[i++];
                }
            }
            wd.len = j;
        }
        pair_count.erase(top.key);
        std::sort(touched.begin(), touched.end());
        touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
        for (uint64_t k : touched) {
            auto it = pair_count.find(k);
            if (it != pair_count.end() && it->second > 0) heap.push(Cand{it->second, k});
        }
        progress.update(static_cast<double>(merges.size()));
    }
    progress.finish();
    st.merges = merges.size();
    st.seconds_merge = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::vector<AddedToken> added;
    for (const std::string& s : opts.special_tokens) {
        added.push_back(AddedToken{static_cast<int32_t>(tokens.size()), s, true, false, false});
        tokens.push_back(s);
    }
    return BpeTokenizer(std::move(tokens), std::move(merges), {SplitRule{opts.pattern, SplitBehavior::Isolated, false}}, std::move(added), opts.nfc,
                        false, false);
}

int threads_of(const BpeTrainOptions& o) {
    return o.n_threads > 0 ? o.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// count (files or texts) → merges, timing each phase
template <class Count>
BpeTokenizer train(const BpeTrainOptions& opts, BpeTrainStats* stats, Count&& count) {
    for (const std::string& s : opts.special_tokens)
        if (s.empty()) throw_bad_input("a special token is empty");
    BpeTrainStats st;
    const auto t0 = std::chrono::steady_clock::now();
    Counts counts = count(threads_of(opts), st);
    st.seconds_count = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BpeTokenizer tok = learn_merges(std::move(counts), opts, st);
    st.peak_rss = peak_rss_bytes();
    if (stats) *stats = st;
    return tok;
}

}  // namespace

BpeTokenizer train_bpe(const std::vector<std::string>& files, const BpeTrainOptions& opts, BpeTrainStats* stats) {
    if (files.empty()) throw_bad_input("no training files given");
    return train(opts, stats, [&](int threads, BpeTrainStats& st) { return count_files(files, opts, threads, st); });
}

BpeTokenizer train_bpe_texts(const std::vector<std::string>& texts, const BpeTrainOptions& opts, BpeTrainStats* stats) {
    return train(opts, stats, [&](int threads, BpeTrainStats& st) { return count_texts(texts, opts, threads, st); });
}

}  // namespace llmforge
