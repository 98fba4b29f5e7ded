// Structure-aware chunking. A document is cut into sections at its headings; a section's paragraphs are packed into
// chunks of at most max_tokens, whole paragraphs while they fit, sentence by sentence otherwise (and a sentence longer
// than a chunk word by word). A new chunk of the same section starts with the previous chunk's last sentences, up to
// `overlap` tokens, so that a passage cut in two is whole in one of them.
#include <algorithm>
#include <cctype>

#include "llmforge/rag.h"

namespace llmforge::rag {

namespace {

// A piece of the section that is never cut: a sentence, or part of an overlong one.
struct Unit {
    size_t begin, end;
    size_t tokens;
    bool carried = false;  // repeated from the previous chunk
};

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// A heading's text as a label: Markdown's '#' marks and surrounding spaces removed, lines joined.
std::string label(std::string_view t) {
    while (!t.empty() && (t.front() == '#' || space(t.front()))) t.remove_prefix(1);
    while (!t.empty() && (t.back() == '#' || space(t.back()))) t.remove_suffix(1);
    std::string s;
    for (char c : t) {
        if (space(c)) {
            if (!s.empty() && s.back() != ' ') s += ' ';
        } else {
            s += c;
        }
    }
    return s;
}

class Packer {
public:
    Packer(const Document& d, const ChunkOptions& o, std::vector<Chunk>& out)
        : text_(d.text), out_(out), max_(static_cast<size_t>(std::max(1, o.max_tokens))),
          overlap_(static_cast<size_t>(std::clamp(o.overlap, 0, std::max(0, o.max_tokens - 1)))) {
        count_ = o.count ? o.count : [](std::string_view s) { return words(s).size(); };
    }

    void section(const std::string& heading, const std::vector<Block>& paras) {
        heading_ = heading;
        cur_.clear();
        cur_tokens_ = 0;
        for (const Block& p : paras) paragraph(p.begin, p.end);
        emit();
    }

private:
    void paragraph(size_t b, size_t e) {
        const std::string_view p = text_.substr(b, e - b);
        const size_t tokens = count_(p);
        if (tokens == 0) return;
        if (tokens <= max_) {
            // A paragraph that fits in a chunk is not cut: close the chunk first if it would overflow it, and repeat
            // only as much of the previous chunk as leaves room for it.
            if (cur_tokens_ + tokens > max_ && fresh() > 0) emit();
            while (!cur_.empty() && cur_tokens_ + tokens > max_) drop_front();
        }
        std::vector<Unit> units;
        for (auto [sb, se] : sentences(p)) {
            while (se > sb && space(p[se - 1])) --se;
            if (se == sb) continue;
            const size_t t = count_(p.substr(sb, se - sb));
            if (t <= max_) {
                units.push_back({b + sb, b + se, t});
                continue;
            }
            // An overlong sentence: word by word.
            const std::string_view s = p.substr(sb, se - sb);
            size_t start = 0, acc = 0;
            for (auto [wb, we] : word_spans(s)) {
                const size_t wt = count_(s.substr(wb, we - wb));
                if (acc > 0 && acc + wt > max_) {
                    units.push_back({b + sb + start, b + sb + wb, acc});
                    start = wb;
                    acc = 0;
                }
                acc += wt;
            }
            units.push_back({b + sb + start, b + se, acc});
        }
        for (Unit& u : units) add(u);
    }

    void add(const Unit& u) {
        if (cur_tokens_ + u.tokens > max_) {
            if (fresh() > 0) emit();
            while (!cur_.empty() && cur_tokens_ + u.tokens > max_) drop_front();
        }
        cur_.push_back(u);
        cur_tokens_ += u.tokens;
    }

    size_t fresh() const {
        size_t n = 0;
        for (const Unit& u : cur_) n += !u.carried;
        return n;
    }

    void drop_front() {
        cur_tokens_ -= cur_.front().tokens;
        cur_.erase(cur_.begin());
    }

    // Writes the chunk collected (if it holds anything new) and starts the next with its last sentences.
    void emit() {
        if (fresh() == 0) return;
        Chunk c;
        c.heading = heading_;
        c.begin = cur_.front().begin;
        c.end = cur_.back().end;
        while (c.begin < c.end && space(text_[c.begin])) ++c.begin;
        c.tokens = static_cast<int>(cur_tokens_);
        out_.push_back(c);
        std::vector<Unit> carry;
        size_t t = 0;
        for (size_t i = cur_.size(); i-- > 1;) {  // never the whole chunk again
            if (t + cur_[i].tokens > overlap_) break;
            t += cur_[i].tokens;
            carry.insert(carry.begin(), cur_[i]);
            carry.front().carried = true;
        }
        cur_ = std::move(carry);
        cur_tokens_ = t;
    }

    std::string_view text_;
    std::vector<Chunk>& out_;
    size_t max_, overlap_;
    std::function<size_t(std::string_view)> count_;
    std::string heading_;
    std::vector<Unit> cur_;
    size_t cur_tokens_ = 0;
};

}  // namespace

std::vector<Chunk> chunk_document(const Document& d, const ChunkOptions& o) {
    std::vector<Chunk> out;
    Packer packer(d, o, out);
    std::vector<std::pair<int, std::string>> path;  // the headings above: (level, label)
    std::vector<Block> paras;
    auto heading = [&] {
        std::string h;
        for (const auto& [lvl, l] : path) h += (h.empty() ? "" : " > ") + l;
        return h;
    };
    for (const Block& b : d.blocks) {
        if (b.level == 0) {
            paras.push_back(b);
            continue;
        }
        packer.section(heading(), paras);
        paras.clear();
        while (!path.empty() && path.back().first >= b.level) path.pop_back();
        path.emplace_back(b.level, label(std::string_view(d.text).substr(b.begin, b.end - b.begin)));
    }
    packer.section(heading(), paras);
    return out;
}

}  // namespace llmforge::rag
