// Byte-level BPE encoding and decoding. File formats are in bpe_io.cpp, training in bpe_train.cpp.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <mutex>
#include <queue>
#include <thread>

#include "llmforge/error.h"
#include "tokenizer/bpe_impl.h"

namespace llmforge {

namespace detail {

void TokenIndex::build(const std::vector<std::string>& tokens, const std::vector<uint8_t>& include) {
    tokens_ = &tokens;
    size_t n = 0;
    for (size_t i = 0; i < tokens.size(); ++i) n += include[i] ? 1 : 0;
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, -1);
    mask_ = cap - 1;
    for (size_t id = 0; id < tokens.size(); ++id) {
        if (!include[id]) continue;
        const std::string& t = tokens[id];
        if (find(t.data(), t.size()) >= 0) continue;  // duplicate bytes: the first id wins
        size_t i = hash_bytes(t.data(), t.size()) & mask_;
        while (slots_[i] >= 0) i = (i + 1) & mask_;
        slots_[i] = static_cast<int32_t>(id);
    }
}

void PairTable::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{kEmpty, 0, 0});
    mask_ = cap - 1;
    count_ = 0;
}

void PairTable::insert(int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((count_ + 1) * 2 > slots_.size()) {  // grow
        std::vector<Entry> old = std::move(slots_);
        reserve(std::max<size_t>(16, old.size()));
        for (const Entry& e : old)
            if (e.key != kEmpty) insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xffffffffu), e.rank, e.id);
    }
    const uint64_t k = key(a, b);
    size_t i = slot(k);
    while (slots_[i].key != kEmpty) {
        if (slots_[i].key == k) return;
        i = (i + 1) & mask_;
    }
    slots_[i] = Entry{k, rank, id};
    ++count_;
}

}  // namespace detail

namespace {

std::atomic<uint64_t> g_serial{1};

// A per-thread cache of piece → ids, for pieces that needed merging. Open addressing over an arena; cleared when full.
class PieceCache {
public:
    const int32_t* find(uint64_t serial, const unsigned char* p, size_t n, uint64_t h, size_t& count) {
        if (serial != serial_) reset(serial);
        size_t i = h & mask_;
        for (;;) {
            const Slot& s = slots_[i];
            if (s.len == 0) return nullptr;
            if (s.hash == h && s.len == n && std::memcmp(bytes_.data() + s.bytes_off, p, n) == 0) {
                count = s.ids_len;
                return ids_.data() + s.ids_off;
            }
            i = (i + 1) & mask_;
        }
    }
    void insert(const unsigned char* p, size_t n, uint64_t h, const int32_t* ids, size_t count) {
        if (used_ * 2 >= slots_.size() || bytes_.size() > (64u << 20)) reset(serial_);
        size_t i = h & mask_;
        while (slots_[i].len != 0) i = (i + 1) & mask_;
        slots_[i] = Slot{h, static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(n), static_cast<uint32_t>(ids_.size()),
                         static_cast<uint32_t>(count)};
        bytes_.insert(bytes_.end(), p, p + n);
        ids_.insert(ids_.end(), ids, ids + count);
        ++used_;
    }

private:
    struct Slot { uint64_t hash; uint32_t bytes_off, len, ids_off, ids_len; };
    void reset(uint64_t serial) {
        serial_ = serial;
        slots_.assign(1u << 18, Slot{0, 0, 0, 0, 0});
        mask_ = slots_.size() - 1;
        bytes_.clear();
        ids_.clear();
        used_ = 0;
    }
    uint64_t serial_ = 0;
    std::vector<Slot> slots_;
    size_t mask_ = 0, used_ = 0;
    std::vector<unsigned char> bytes_;
    std::vector<int32_t> ids_;
};

PieceCache& piece_cache() {
    thread_local PieceCache c;
    return c;
}

constexpr size_t kSmallPiece = 96;  // below this the quadratic scan beats a heap
constexpr size_t kCachePiece = 256; // longer pieces are rare and not cached

}  // namespace

void BpeTokenizer::Impl::build() {
    const size_t n = tokens.size();
    valid.resize(n, 1);
    special.resize(n, 0);
    std::vector<uint8_t> in_index(n, 0);
    std::vector<uint8_t> is_added(n, 0);
    for (const AddedToken& a : added) {
        if (a.id < 0 || static_cast<size_t>(a.id) >= n) throw_bad_input("added token '%s' has id %d outside the vocabulary", a.content.c_str(), a.id);
        if (a.content.empty()) throw_bad_input("added token %d is empty", a.id);
        is_added[static_cast<size_t>(a.id)] = 1;
        special[static_cast<size_t>(a.id)] = a.special ? 1 : 0;
    }
    for (size_t i = 0; i < n; ++i) in_index[i] = valid[i] && !is_added[i];
    index.build(tokens, in_index);
    for (int b = 0; b < 256; ++b) {
        const unsigned char c = static_cast<unsigned char>(b);
        byte_token[b] = index.find(&c, 1);
    }
    pairs.reserve(merges.size() + 16);
    for (size_t r = 0; r < merges.size(); ++r) {
        const auto [a, b] = merges[r];
        if (a < 0 || b < 0 || static_cast<size_t>(a) >= n || static_cast<size_t>(b) >= n)
            throw_bad_input("merge %zu names a token id outside the vocabulary", r);
        const std::string joined = tokens[static_cast<size_t>(a)] + tokens[static_cast<size_t>(b)];
        const int32_t id = index.find(joined.data(), joined.size());
        if (id < 0) throw_bad_input("merge %zu ('%s' + '%s') forms a token the vocabulary lacks", r,
                                    bytes_to_unicode_text(tokens[static_cast<size_t>(a)]).c_str(),
                                    bytes_to_unicode_text(tokens[static_cast<size_t>(b)]).c_str());
        pairs.insert(a, b, static_cast<int32_t>(r), id);
    }
    splitters.clear();
    for (const SplitRule& r : rules) splitters.emplace_back(r);
    std::stable_sort(added.begin(), added.end(), [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
    std::fill(std::begin(added_first_byte), std::end(added_first_byte), false);
    has_plain_added = false;
    for (const AddedToken& a : added) {
        added_first_byte[static_cast<unsigned char>(a.content[0])] = true;
        has_plain_added = has_plain_added || !a.special;
    }
    serial = g_serial.fetch_add(1);
}

// ---- merging one piece ---------------------------------------------------------------------------------------------

// Quadratic scan, as tiktoken does: after each merge only the two neighbouring pair ranks change.
void BpeTokenizer::Impl::merge_small(const unsigned char* p, size_t n, std::vector<int32_t>& out) const {
    int32_t sym[kSmallPiece], rank[kSmallPiece], res[kSmallPiece];
    for (size_t i = 0; i < n; ++i) {
        sym[i] = byte_token[p[i]];
        if (sym[i] < 0) throw_bad_input("the vocabulary has no token for byte 0x%02x", p[i]);
    }
    auto pair_rank = [&](size_t i) {
        const detail::PairTable::Entry* e = pairs.find(sym[i], sym[i + 1]);
        if (e) { rank[i] = e->rank; res[i] = e->id; }
        else rank[i] = INT_MAX;
    };
    size_t m = n;
    for (size_t i = 0; i + 1 < m; ++i) pair_rank(i);
    while (m > 1) {
        size_t best = 0;
        int32_t best_rank = INT_MAX;
        for (size_t i = 0; i + 1 < m; ++i)
            if (rank[i] < best_rank) { best_rank = rank[i]; best = i; }
        if (best_rank == INT_MAX) break;
        sym[best] = res[best];
        const size_t tail = m - best - 2;  // symbols after the consumed right one
        std::memmove(sym + best + 1, sym + best + 2, tail * sizeof(int32_t));
        std::memmove(rank + best + 1, rank + best + 2, tail * sizeof(int32_t));
        std::memmove(res + best + 1, res + best + 2, tail * sizeof(int32_t));
        --m;
        if (best + 1 < m) pair_rank(best);
        if (best > 0) pair_rank(best - 1);
    }
    out.insert(out.end(), sym, sym + m);
}

// Linked list + min-heap of candidate merges (ordered by rank, then position) with stale entries skipped.
void BpeTokenizer::Impl::merge_large(const unsigned char* p, size_t n, std::vector<int32_t>& out) const {
    struct Node { int32_t id; int32_t prev, next; };
    struct Cand {
        int32_t rank, pos, id;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Node> nodes(n);
    for (size_t i = 0; i < n; ++i) {
        const int32_t t = byte_token[p[i]];
        if (t < 0) throw_bad_input("the vocabulary has no token for byte 0x%02x", p[i]);
        nodes[i] = Node{t, static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
    }
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int32_t i) {
        const int32_t j = nodes[static_cast<size_t>(i)].next;
        if (j < 0) return;
        const detail::PairTable::Entry* e = pairs.find(nodes[static_cast<size_t>(i)].id, nodes[static_cast<size_t>(j)].id);
        if (e) heap.push(Cand{e->rank, i, e->id});
    };
    for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Node& a = nodes[static_cast<size_t>(c.pos)];
        if (a.id < 0 || a.next < 0) continue;  // merged away, or nothing to its right any more
        Node& b = nodes[static_cast<size_t>(a.next)];
        const detail::PairTable::Entry* e = pairs.find(a.id, b.id);
        if (!e || e->id != c.id || e->rank != c.rank) continue;  // the pair changed since this candidate was pushed
        a.id = c.id;
        b.id = -1;
        a.next = b.next;
        if (b.next >= 0) nodes[static_cast<size_t>(b.next)].prev = c.pos;
        if (a.prev >= 0) push(a.prev);
        push(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = nodes[static_cast<size_t>(i)].next) out.push_back(nodes[static_cast<size_t>(i)].id);
}

void BpeTokenizer::Impl::encode_piece(const unsigned char* p, size_t n, std::vector<int32_t>& out) const {
    if (n == 0) return;
    if (n == 1) {
        const int32_t t = byte_token[p[0]];
        if (t < 0) throw_bad_input("the vocabulary has no token for byte 0x%02x", p[0]);
        out.push_back(t);
        return;
    }
    if (whole_token_first) {
        const int32_t id = index.find(p, n);
        if (id >= 0) { out.push_back(id); return; }
    }
    if (n > kCachePiece) {
        merge_large(p, n, out);
        return;
    }
    PieceCache& cache = piece_cache();
    const uint64_t h = detail::hash_bytes(p, n);
    size_t count = 0;
    if (const int32_t* ids = cache.find(serial, p, n, h, count)) {
        out.insert(out.end(), ids, ids + count);
        return;
    }
    const size_t start = out.size();
    if (n <= kSmallPiece) merge_small(p, n, out);
    else merge_large(p, n, out);
    cache.insert(p, n, h, out.data() + start, out.size() - start);
}

// ---- pre-tokenisation ----------------------------------------------------------------------------------------------

void BpeTokenizer::Impl::pre_split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const {
    pieces.clear();
    if (text.empty()) return;
    if (splitters.empty()) {
        pieces.emplace_back(0, text.size());
        return;
    }
    splitters[0].split(text, 0, pieces);
    std::vector<std::pair<size_t, size_t>> next;
    for (size_t s = 1; s < splitters.size(); ++s) {
        next.clear();
        for (const auto& [b, e] : pieces) splitters[s].split(text.substr(b, e - b), b, next);
        pieces.swap(next);
    }
}

void BpeTokenizer::Impl::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
    std::string buf;
    if (nfc) {
        bool ascii = true;
        for (unsigned char c : text) if (c >= 0x80) { ascii = false; break; }
        if (!ascii) {
            buf = nfc_normalize(text);
            text = buf;
        }
    }
    if (add_prefix_space && (text.empty() || text[0] != ' ')) {
        if (text.empty()) return;
        std::string spaced;
        spaced.reserve(text.size() + 1);
        spaced.push_back(' ');
        spaced.append(text);
        buf.swap(spaced);
        text = buf;
    }
    thread_local std::vector<std::pair<size_t, size_t>> pieces;
    pre_split(text, pieces);
    const auto* base = reinterpret_cast<const unsigned char*>(text.data());
    for (const auto& [b, e] : pieces) encode_piece(base + b, e - b, out);
}

// ---- public API ----------------------------------------------------------------------------------------------------

BpeTokenizer::BpeTokenizer(std::vector<std::string> tokens, std::vector<std::pair<int32_t, int32_t>> merges, std::vector<SplitRule> pre,
                           std::vector<AddedToken> added, bool nfc, bool whole_token_first, bool add_prefix_space) {
    auto impl = std::make_shared<Impl>();
    impl->tokens = std::move(tokens);
    impl->merges = std::move(merges);
    impl->rules = std::move(pre);
    impl->added = std::move(added);
    impl->nfc = nfc;
    impl->whole_token_first = whole_token_first;
    impl->add_prefix_space = add_prefix_space;
    impl->build();
    impl_ = std::move(impl);
}

BpeTokenizer BpeTokenizer::from_ranks(std::vector<std::string> tokens_by_rank, std::vector<SplitRule> pre, std::vector<AddedToken> added) {
    // Extend the table to hold the special ids, marking the holes between.
    size_t n = tokens_by_rank.size();
    for (const AddedToken& a : added) n = std::max(n, static_cast<size_t>(a.id) + 1);
    const size_t n_ranks = tokens_by_rank.size();
    tokens_by_rank.resize(n);
    std::vector<uint8_t> valid(n, 0);
    for (size_t i = 0; i < n_ranks; ++i) valid[i] = 1;
    for (const AddedToken& a : added) {
        if (a.id < static_cast<int32_t>(n_ranks)) throw_bad_input("special token '%s' reuses rank %d of an ordinary token", a.content.c_str(), a.id);
        tokens_by_rank[static_cast<size_t>(a.id)] = a.content;
        valid[static_cast<size_t>(a.id)] = 1;
    }
    auto impl = std::make_shared<Impl>();
    impl->tokens = std::move(tokens_by_rank);
    impl->valid = valid;
    impl->rules = std::move(pre);
    impl->added = std::move(added);
    impl->whole_token_first = true;
    // Under tiktoken's rule the rank of a pair is the rank of the token it forms, and the parts being merged are always
    // tokens: so every split of a token into two tokens is a merge of that token's rank.
    std::vector<uint8_t> in_index(n, 0);
    for (size_t i = 0; i < n_ranks; ++i) in_index[i] = 1;
    detail::TokenIndex idx;
    idx.build(impl->tokens, in_index);
    for (size_t r = 0; r < n_ranks; ++r) {
        const std::string& t = impl->tokens[r];
        if (t.empty()) throw_bad_input("token of rank %zu is empty", r);
        for (size_t k = 1; k < t.size(); ++k) {
            const int32_t a = idx.find(t.data(), k), b = idx.find(t.data() + k, t.size() - k);
            if (a >= 0 && b >= 0) impl->merges.emplace_back(a, b);
        }
    }
    // Ranks order the merges: sort by the rank of the result (stable keeps the split order within a token).
    std::vector<int32_t> result(impl->merges.size());
    for (size_t i = 0; i < impl->merges.size(); ++i) {
        const std::string j = impl->tokens[static_cast<size_t>(impl->merges[i].first)] + impl->tokens[static_cast<size_t>(impl->merges[i].second)];
        result[i] = idx.find(j.data(), j.size());
    }
    std::vector<size_t> order(impl->merges.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return result[x] < result[y]; });
    std::vector<std::pair<int32_t, int32_t>> sorted;
    sorted.reserve(order.size());
    for (size_t i : order) sorted.push_back(impl->merges[i]);
    impl->merges = std::move(sorted);
    impl->build();
    // build() ranked merges by position; tiktoken ranks them by the token they form. Re-rank.
    detail::PairTable pt;
    pt.reserve(impl->merges.size() + 16);
    for (const auto& [a, b] : impl->merges) {
        const std::string j = impl->tokens[static_cast<size_t>(a)] + impl->tokens[static_cast<size_t>(b)];
        const int32_t id = impl->index.find(j.data(), j.size());
        pt.insert(a, b, id, id);
    }
    impl->pairs = std::move(pt);
    return BpeTokenizer(std::shared_ptr<const Impl>(std::move(impl)));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool allow_special) const {
    const Impl& im = *impl_;
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (im.added.empty() || (!allow_special && !im.has_plain_added)) {
        im.encode_ordinary(text, out);
        return out;
    }
    // Cut out added tokens, leftmost first, longest first at a position. Special (control) tokens only when allowed;
    // plain added tokens (user-defined: GPT-NeoX's runs of spaces, DeepSeek's extra characters) always.
    size_t start = 0, i = 0;
    while (i < text.size()) {
        if (!im.added_first_byte[static_cast<unsigned char>(text[i])]) { ++i; continue; }
        const AddedToken* hit = nullptr;
        for (const AddedToken& a : im.added)
            if ((allow_special || !a.special) && text.compare(i, a.content.size(), a.content) == 0) { hit = &a; break; }
        if (!hit) { ++i; continue; }
        size_t seg_end = i, after = i + hit->content.size();
        if (hit->lstrip) while (seg_end > start && std::isspace(static_cast<unsigned char>(text[seg_end - 1]))) --seg_end;
        if (hit->rstrip) while (after < text.size() && std::isspace(static_cast<unsigned char>(text[after]))) ++after;
        im.encode_ordinary(text.substr(start, seg_end - start), out);
        out.push_back(hit->id);
        start = i = after;
    }
    im.encode_ordinary(text.substr(start), out);
    return out;
}

std::vector<std::vector<int32_t>> BpeTokenizer::encode_batch(const std::vector<std::string>& texts, int n_threads, bool allow_special) const {
    std::vector<std::vector<int32_t>> out(texts.size());
    if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    n_threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(n_threads), std::max<size_t>(1, texts.size())));
    std::atomic<size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mu;
    auto worker = [&] {
        try {
            for (size_t i; (i = next.fetch_add(1)) < texts.size();) out[i] = encode(texts[i], allow_special);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!error) error = std::current_exception();
            next = texts.size();
        }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < n_threads; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
    return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    const Impl& im = *impl_;
    std::string out;
    for (int32_t id : ids) {
        if (id < 0 || static_cast<size_t>(id) >= im.tokens.size() || !im.valid[static_cast<size_t>(id)])
            throw_bad_input("token id %d is out of range (vocabulary of %zu)", id, im.tokens.size());
        if (skip_special && im.special[static_cast<size_t>(id)]) continue;
        out += im.tokens[static_cast<size_t>(id)];
    }
    return out;
}

const std::string& BpeTokenizer::token_bytes(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= impl_->tokens.size() || !impl_->valid[static_cast<size_t>(id)])
        throw_bad_input("token id %d is out of range (vocabulary of %zu)", id, impl_->tokens.size());
    return impl_->tokens[static_cast<size_t>(id)];
}

std::string BpeTokenizer::token_text(int32_t id) const {
    const std::string& b = token_bytes(id);
    for (const AddedToken& a : impl_->added)
        if (a.id == id) return a.content;
    return bytes_to_unicode_text(b);
}

int32_t BpeTokenizer::size() const { return static_cast<int32_t>(impl_->tokens.size()); }
int32_t BpeTokenizer::find(std::string_view bytes) const { return impl_->index.find(bytes.data(), bytes.size()); }
int32_t BpeTokenizer::find_added(std::string_view content) const {
    for (const AddedToken& a : impl_->added)
        if (a.content == content) return a.id;
    return -1;
}
bool BpeTokenizer::is_special(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[static_cast<size_t>(id)];
}
const std::vector<AddedToken>& BpeTokenizer::added_tokens() const { return impl_->added; }
const std::vector<SplitRule>& BpeTokenizer::pre_rules() const { return impl_->rules; }
const std::vector<std::pair<int32_t, int32_t>>& BpeTokenizer::merges() const { return impl_->merges; }
bool BpeTokenizer::nfc() const { return impl_->nfc; }

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text) const {
    std::string buf;
    if (impl_->nfc) { buf = nfc_normalize(text); text = buf; }
    std::vector<std::pair<size_t, size_t>> pieces;
    impl_->pre_split(text, pieces);
    std::vector<std::string> out;
    for (const auto& [b, e] : pieces) out.emplace_back(text.substr(b, e - b));
    return out;
}

}  // namespace llmforge
