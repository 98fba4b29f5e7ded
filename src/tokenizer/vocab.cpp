#include <algorithm>
#include <cstring>
#include <fstream>
#include <queue>

#include "core/mmap_file.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/tokenizer.h"
#include "llmforge/utf8.h"
#include "tokenizer/vocab_hf.h"

namespace llmforge {

static const std::string kSpace = "\xe2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space

static std::string escape_spaces(const std::string& s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (char c : s) {
        if (c == ' ') out += kSpace;
        else out += c;
    }
    return out;
}

static std::string unescape_spaces(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s.compare(i, 3, kSpace) == 0) { out += ' '; i += 3; }
        else out += s[i++];
    }
    return out;
}

// "<0xAB>" → 0xAB, or -1.
static int parse_byte_piece(const std::string& p) {
    if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; ++k) {
        const char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else return -1;
    }
    return v;
}

void Vocab::finalize() {
    const int32_t n = size();
    if (n == 0) throw_bad_input("the tokenizer vocabulary is empty");
    if (static_cast<int32_t>(scores.size()) != n) scores.resize(n, 0.0f);
    if (static_cast<int32_t>(types.size()) != n) types.resize(n, TokenType::Normal);
    for (int32_t id : {bos, eos, unk})
        if (id < -1 || id >= n) throw_bad_input("the tokenizer's special token id %d is outside the vocabulary (%d tokens)", id, n);
    index_.clear();
    index_.reserve(static_cast<size_t>(n) * 2);
    std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
    user_tokens_.clear();
    control_tokens_.clear();
    for (int32_t i = 0; i < n; ++i) {
        index_.emplace(pieces[i], i);  // the first of duplicate pieces wins
        if (types[i] == TokenType::Byte) {
            const int b = parse_byte_piece(pieces[i]);
            if (b >= 0 && byte_ids_[b] < 0) byte_ids_[b] = i;
        } else if (types[i] == TokenType::UserDefined && !pieces[i].empty()) {
            user_tokens_.push_back(i);
        } else if ((types[i] == TokenType::Control || types[i] == TokenType::Unknown) && !pieces[i].empty()) {
            control_tokens_.push_back(i);
        }
    }
    auto longer = [&](int32_t a, int32_t b) { return pieces[a].size() > pieces[b].size(); };
    std::stable_sort(user_tokens_.begin(), user_tokens_.end(), longer);
    std::stable_sort(control_tokens_.begin(), control_tokens_.end(), longer);
}

int32_t Vocab::find(const std::string& piece) const {
    auto it = index_.find(piece);
    return it == index_.end() ? -1 : it->second;
}

// ------------------------------------------------------------------------------------- SentencePiece BPE
namespace {
struct Symbol {
    size_t start, len;  // bytes of the (escaped) text this symbol covers; len 0 once merged away
    int prev, next;
};
struct Bigram {
    int left, right;
    float score;
    size_t len;
    // priority_queue pops the largest: highest score first, then the leftmost pair.
    bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
};
}  // namespace

void Vocab::resegment(const std::string& text, std::vector<int32_t>& out) const {
    const int32_t id = find(text);
    if (id >= 0) {
        out.push_back(id);
        return;
    }
    for (unsigned char c : text) out.push_back(byte_ids_[c] >= 0 ? byte_ids_[c] : unk);  // byte fallback
}

void Vocab::encode_spm(const std::string& text, std::vector<int32_t>& out) const {
    std::vector<Symbol> sym;
    for (size_t i = 0; i < text.size();) {
        const size_t n = std::min(utf8_len(static_cast<unsigned char>(text[i])), text.size() - i);
        sym.push_back({i, n, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1});
        i += n;
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    std::priority_queue<Bigram> queue;
    auto try_pair = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const size_t len = sym[l].len + sym[r].len;
        const int32_t id = find(text.substr(sym[l].start, len));
        if (id < 0) return;
        queue.push({l, r, scores[id], len});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_pair(static_cast<int>(i) - 1, static_cast<int>(i));

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& l = sym[b.left];
        Symbol& r = sym[b.right];
        if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale: one side already merged
        l.len += r.len;  // merge right into left
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_pair(l.prev, b.left);
        try_pair(b.left, l.next);
    }
    for (int i = 0; i >= 0; i = sym[i].next) resegment(text.substr(sym[i].start, sym[i].len), out);
}

std::vector<int32_t> Vocab::encode(const std::string& text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_special && add_bos && bos >= 0) out.push_back(bos);
    if (bpe) {
        const std::vector<int32_t> ids = bpe->encode(text, parse_special);
        out.insert(out.end(), ids.begin(), ids.end());
        if (add_special && add_eos && eos >= 0) out.push_back(eos);
        return out;
    }

    // Split the text around special tokens (user-defined always; control tokens only when asked), longest first.
    struct Frag { bool is_token; int32_t id; std::string text; };
    std::vector<Frag> frags;
    if (!text.empty()) frags.push_back({false, -1, text});
    auto split_on = [&](int32_t id) {
        const std::string& p = pieces[id];
        std::vector<Frag> next;
        for (auto& f : frags) {
            if (f.is_token) { next.push_back(std::move(f)); continue; }
            size_t pos = 0;
            for (;;) {
                size_t hit = f.text.find(p, pos);
                if (hit == std::string::npos) break;
                if (hit > pos) next.push_back({false, -1, f.text.substr(pos, hit - pos)});
                next.push_back({true, id, {}});
                pos = hit + p.size();
            }
            if (pos < f.text.size()) next.push_back({false, -1, f.text.substr(pos)});
        }
        frags.swap(next);
    };
    std::vector<int32_t> specials = user_tokens_;
    if (parse_special) specials.insert(specials.end(), control_tokens_.begin(), control_tokens_.end());
    std::stable_sort(specials.begin(), specials.end(), [&](int32_t a, int32_t b) { return pieces[a].size() > pieces[b].size(); });
    for (int32_t id : specials) split_on(id);

    bool prev_special = true;  // the leading-space rule: a space goes before the first text, and after a special token
    for (const auto& f : frags) {
        if (f.is_token) {
            out.push_back(f.id);
            prev_special = true;
            continue;
        }
        if (model == "bert") {
            encode_wpm(f.text, out);
            prev_special = false;
            continue;
        }
        std::string t = (add_space_prefix && prev_special) ? " " + f.text : f.text;
        encode_spm(escape_spaces(t), out);
        prev_special = false;
    }
    if (add_special && add_eos && eos >= 0) out.push_back(eos);
    return out;
}

std::string Vocab::token_to_piece(int32_t id, bool special) const {
    if (id < 0 || id >= size()) return "";
    if (bpe) {
        if (types[id] == TokenType::Unused) return "";
        if (bpe->is_special(id) && !special) return "";
        return bpe->token_bytes(id);
    }
    switch (types[id]) {
        case TokenType::Normal:
        case TokenType::Undefined:
        case TokenType::Unused:
            return unescape_spaces(pieces[id]);
        case TokenType::Byte: {
            const int b = parse_byte_piece(pieces[id]);
            return b >= 0 ? std::string(1, static_cast<char>(b)) : pieces[id];
        }
        case TokenType::UserDefined:
            return pieces[id];
        case TokenType::Unknown:
            return special ? pieces[id] : "\xe2\x96\x85";  // llama.cpp shows an unknown token as U+2585
        case TokenType::Control:
            return special ? pieces[id] : "";
    }
    return "";
}

std::string Vocab::decode(const std::vector<int32_t>& ids, bool special) const {
    std::string s;
    for (int32_t id : ids) s += token_to_piece(id, special);
    return s;
}

// ------------------------------------------------------------------------------------- GGUF
Vocab Vocab::from_gguf(const gguf::Metadata& meta, const std::string& path) {
    Vocab v;
    v.model = meta.get_string("tokenizer.ggml.model", "");
    if (v.model.empty()) throw_bad_input("'%s' has no tokenizer (tokenizer.ggml.model is missing)", path.c_str());
    if (v.model == "gpt2") {
        Vocab b = from_bpe(BpeTokenizer::from_gguf(meta, path));
        b.bos = static_cast<int32_t>(meta.get_int("tokenizer.ggml.bos_token_id", -1));
        b.eos = static_cast<int32_t>(meta.get_int("tokenizer.ggml.eos_token_id", -1));
        b.unk = static_cast<int32_t>(meta.get_int("tokenizer.ggml.unknown_token_id", -1));
        b.add_bos = meta.get_bool("tokenizer.ggml.add_bos_token", false);
        b.add_eos = meta.get_bool("tokenizer.ggml.add_eos_token", false);
        b.pre = meta.get_string("tokenizer.ggml.pre", "");
        b.chat_template = meta.get_string("tokenizer.chat_template", "");
        if (const gguf::Value* ty = meta.find("tokenizer.ggml.token_type"))
            for (size_t i = 0; i < ty->arr_i.size() && i < b.types.size(); ++i)
                b.types[i] = (ty->arr_i[i] >= 0 && ty->arr_i[i] <= 6) ? static_cast<TokenType>(ty->arr_i[i]) : TokenType::Normal;
        b.finalize();
        return b;
    }
    if (v.model != "llama" && v.model != "bert")
        throw_bad_input("'%s': tokenizer model '%s' is not supported (SentencePiece 'llama', byte-level BPE 'gpt2' and WordPiece 'bert' are)",
                        path.c_str(), v.model.c_str());
    const gguf::Value* toks = meta.find("tokenizer.ggml.tokens");
    if (!toks || toks->type != gguf::Type::ARRAY || toks->elem != gguf::Type::STRING)
        throw_bad_input("'%s' has no tokenizer.ggml.tokens string array", path.c_str());
    v.pieces = toks->arr_s;
    const size_t n = v.pieces.size();
    if (const gguf::Value* sc = meta.find("tokenizer.ggml.scores")) {
        if (sc->array_size() != n) throw_bad_input("'%s': tokenizer.ggml.scores has %zu entries for %zu tokens", path.c_str(), sc->array_size(), n);
        for (double f : sc->arr_f) v.scores.push_back(static_cast<float>(f));
        for (int64_t i : sc->arr_i) v.scores.push_back(static_cast<float>(i));
    }
    if (const gguf::Value* ty = meta.find("tokenizer.ggml.token_type")) {
        if (ty->array_size() != n || ty->arr_i.size() != n) throw_bad_input("'%s': tokenizer.ggml.token_type has %zu entries for %zu tokens", path.c_str(), ty->array_size(), n);
        for (int64_t t : ty->arr_i) v.types.push_back((t >= 0 && t <= 6) ? static_cast<TokenType>(t) : TokenType::Normal);
    }
    if (v.model == "bert") {
        // WordPiece: a sequence is [CLS] text [SEP] (llama.cpp's defaults 101, 102, 100 are BERT's ids; GGUF spells the
        // separator's key "seperator")
        v.bos = static_cast<int32_t>(meta.get_int("tokenizer.ggml.cls_token_id", meta.get_int("tokenizer.ggml.bos_token_id", 101)));
        v.eos = static_cast<int32_t>(meta.get_int("tokenizer.ggml.seperator_token_id", meta.get_int("tokenizer.ggml.eos_token_id", 102)));
        v.unk = static_cast<int32_t>(meta.get_int("tokenizer.ggml.unknown_token_id", 100));
        v.add_bos = v.add_eos = true;
        v.add_space_prefix = false;
    } else {
        v.bos = static_cast<int32_t>(meta.get_int("tokenizer.ggml.bos_token_id", 1));
        v.eos = static_cast<int32_t>(meta.get_int("tokenizer.ggml.eos_token_id", 2));
        v.unk = static_cast<int32_t>(meta.get_int("tokenizer.ggml.unknown_token_id", 0));
        v.add_bos = meta.get_bool("tokenizer.ggml.add_bos_token", true);
        v.add_eos = meta.get_bool("tokenizer.ggml.add_eos_token", false);
        v.add_space_prefix = meta.get_bool("tokenizer.ggml.add_space_prefix", true);
    }
    v.chat_template = meta.get_string("tokenizer.chat_template", "");
    v.finalize();
    return v;
}

void Vocab::to_gguf(gguf::Metadata& meta) const {
    meta.set("tokenizer.ggml.model", gguf::Value::str(model));
    meta.set("tokenizer.ggml.tokens", gguf::Value::strings(pieces));
    if (bpe) {
        std::vector<std::string> merges;
        merges.reserve(bpe->merges().size());
        for (const auto& [a, b] : bpe->merges()) merges.push_back(bpe->token_text(a) + " " + bpe->token_text(b));
        meta.set("tokenizer.ggml.merges", gguf::Value::strings(std::move(merges)));
        if (!pre.empty()) meta.set("tokenizer.ggml.pre", gguf::Value::str(pre));
    } else {
        meta.set("tokenizer.ggml.scores", gguf::Value::floats(std::vector<double>(scores.begin(), scores.end())));
    }
    std::vector<int64_t> t;
    for (TokenType x : types) t.push_back(static_cast<int64_t>(x));
    meta.set("tokenizer.ggml.token_type", gguf::Value::ints(std::move(t)));
    meta.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(static_cast<uint32_t>(bos)));
    meta.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(eos)));
    meta.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(static_cast<uint32_t>(unk)));
    if (model == "bert") {
        meta.set("tokenizer.ggml.cls_token_id", gguf::Value::u32(static_cast<uint32_t>(bos)));
        meta.set("tokenizer.ggml.seperator_token_id", gguf::Value::u32(static_cast<uint32_t>(eos)));
    }
    meta.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(add_bos));
    meta.set("tokenizer.ggml.add_eos_token", gguf::Value::boolean(add_eos));
    meta.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(add_space_prefix));
    if (!chat_template.empty()) meta.set("tokenizer.chat_template", gguf::Value::str(chat_template));
}

void Vocab::pad_to(int32_t n) {
    if (size() >= n) return;
    for (int32_t i = size(); i < n; ++i) {
        pieces.push_back("[PAD" + std::to_string(i) + "]");
        scores.push_back(0.0f);
        types.push_back(TokenType::Unused);
    }
    finalize();
}

// ------------------------------------------------------------------------------------- byte-level BPE
Vocab Vocab::from_bpe(const BpeTokenizer& t) {
    Vocab v;
    v.model = "gpt2";
    v.bpe = std::make_shared<const BpeTokenizer>(t);
    v.add_bos = v.add_eos = v.add_space_prefix = false;
    v.bos = v.eos = v.unk = -1;
    const int32_t n = t.size();
    v.pieces.resize(n);
    v.types.assign(n, TokenType::Normal);
    for (int32_t i = 0; i < n; ++i) {
        try {
            v.pieces[i] = t.token_text(i);
        } catch (const Error&) {
            v.types[i] = TokenType::Unused;  // an unassigned id (tiktoken's specials leave holes)
        }
    }
    for (const AddedToken& a : t.added_tokens()) v.types[a.id] = a.special ? TokenType::Control : TokenType::UserDefined;
    for (const char* eos : {"<|endoftext|>", "<|end_of_text|>"})
        if (v.eos < 0) v.eos = t.find_added(eos);
    // the pre-tokeniser's name for GGUF, when it is one llama.cpp knows
    const auto& rules = t.pre_rules();
    if (rules.size() == 1) {
        if (rules[0].pattern == bpe_patterns::gpt2) v.pre = "gpt-2";
        else if (rules[0].pattern == bpe_patterns::cl100k) v.pre = "llama-bpe";
        else if (rules[0].pattern == bpe_patterns::qwen2) v.pre = "qwen2";
    }
    v.finalize();
    return v;
}

Vocab Vocab::load(const std::string& path) {
    if (gguf::has_magic(path)) return from_gguf(gguf::read(path).meta, path);
    const size_t slash = path.find_last_of('/');
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".bin") == 0) return from_llama2c(path, 0);
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".json") == 0 && name != "encoder.json") {  // a tokenizer.json: read once
        const std::string text = read_text_file(path);
        const std::string cfg = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/tokenizer_config.json";
        const std::string cfg_text = file_exists(cfg) ? read_text_file(cfg) : std::string();
        if (is_spm_hf_json(text)) return from_hf_spm_json(text, path, cfg_text);
        if (is_wordpiece_hf_json(text)) return from_hf_wordpiece_json(text, path, cfg_text);
        Vocab v = from_bpe(BpeTokenizer::from_hf_json_text(text, path));
        // BOS/EOS from the post-processor and tokenizer_config.json (the JSON read again without its model: fast)
        const nlohmann::json top = nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
            return !(depth == 1 && ev == nlohmann::json::parse_event_t::key && parsed == "model");
        });
        apply_hf_special_tokens(v, top.value("post_processor", nlohmann::json()), cfg_text, path);
        v.finalize();
        return v;
    }
    return from_bpe(BpeTokenizer::load(path));
}

// ------------------------------------------------------------------------------------- llama2.c
Vocab Vocab::from_llama2c(const std::string& path, int32_t expected_size) {
    auto f = MappedFile::open(path);
    const uint8_t* p = f->data();
    const size_t size = f->size();
    size_t pos = 0;
    auto need = [&](size_t n) {
        if (n > size - pos) throw_bad_input("'%s' is truncated: the tokenizer file ends at byte %zu", path.c_str(), size);
    };
    need(4);
    int32_t max_len;
    std::memcpy(&max_len, p, 4);
    pos = 4;
    if (max_len <= 0 || max_len > 1 << 16) throw_bad_input("'%s' is not a llama2.c tokenizer (max token length %d)", path.c_str(), max_len);
    Vocab v;
    while (pos < size && (expected_size <= 0 || v.size() < expected_size)) {
        need(8);
        float score;
        int32_t len;
        std::memcpy(&score, p + pos, 4);
        std::memcpy(&len, p + pos + 4, 4);
        pos += 8;
        if (len < 0 || len > max_len) throw_bad_input("'%s' is corrupt: token %d has length %d (max %d)", path.c_str(), v.size(), len, max_len);
        need(static_cast<size_t>(len));
        std::string text(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(len));
        pos += static_cast<size_t>(len);
        const int32_t id = v.size();
        TokenType type = TokenType::Normal;
        // llama2.c's exporter writes BOS/EOS as "\n<s>\n" / "\n</s>\n" and "▁" as ' ': restore SentencePiece's form.
        if (id == 0) { text = "<unk>"; type = TokenType::Unknown; }
        else if (id == 1) { text = "<s>"; type = TokenType::Control; }
        else if (id == 2) { text = "</s>"; type = TokenType::Control; }
        else if (parse_byte_piece(text) >= 0) type = TokenType::Byte;
        else if (text.empty()) type = TokenType::Control;
        v.pieces.push_back(escape_spaces(text));
        v.scores.push_back(score);
        v.types.push_back(type);
    }
    if (expected_size > 0 && v.size() != expected_size)
        throw_bad_input("'%s' has %d tokens but the model's vocabulary has %d", path.c_str(), v.size(), expected_size);
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.finalize();
    return v;
}

void Vocab::write_llama2c(const std::string& path) const {
    AtomicWriter w(path);
    int32_t max_len = 0;
    std::vector<std::string> texts;
    for (int32_t i = 0; i < size(); ++i) {
        std::string t = unescape_spaces(pieces[i]);
        if (i == bos) t = "\n<s>\n";
        else if (i == eos) t = "\n</s>\n";
        max_len = std::max<int32_t>(max_len, static_cast<int32_t>(t.size()));
        texts.push_back(std::move(t));
    }
    w.write(&max_len, 4);
    for (int32_t i = 0; i < size(); ++i) {
        const int32_t len = static_cast<int32_t>(texts[i].size());
        w.write(&scores[i], 4);
        w.write(&len, 4);
        w.write(texts[i].data(), texts[i].size());
    }
    w.commit();
}

}  // namespace llmforge
