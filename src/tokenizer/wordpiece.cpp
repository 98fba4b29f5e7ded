// WordPiece (BERT's tokenizer), as Hugging Face tokenizers runs it for BERT-family models (BertNormalizer with
// lowercasing, BertPreTokenizer, WordPiece):
//   1. clean: drop NUL, U+FFFD and every "other" character (categories Cc, Cf, Cs, Co, Cn) except \t \n \r; white space
//      (\t \n \r and Unicode White_Space) becomes ' ';
//   2. CJK ideographs get a space on each side (each is a word);
//   3. accents stripped: canonical decomposition (NFD), then nonspacing marks (Mn) dropped; then lower case;
//   4. words: split at white space, and every punctuation character (ASCII punctuation, Unicode P*) is a word alone;
//   5. each word greedily, longest match first: the first piece as a word start, the rest as continuations; a word
//      with a part no piece matches, or longer than 100 characters, is [UNK] as a whole.
// In GGUF (llama.cpp's conversion) a word-start piece carries SentencePiece's "▁" and a continuation is bare (BERT's
// vocab.txt writes continuations "##x"); llmforge keeps the GGUF form.
#include <utf8proc.h>

#include <nlohmann/json.hpp>

#include "llmforge/error.h"
#include "llmforge/tokenizer.h"
#include "llmforge/utf8.h"
#include "tokenizer/vocab_hf.h"

namespace llmforge {

namespace {

const std::string kWordStart = "\xe2\x96\x81";  // "▁"

bool white_space(int32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Control, format, surrogate and private-use characters. Unassigned ones (Cn) are kept, as Hugging Face keeps them
// (they become [UNK]): which code points are unassigned depends on the Unicode version of the tables at hand.
bool other(int32_t c) {
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_CC:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS:
        case UTF8PROC_CATEGORY_CO:
            return true;
        default:
            return false;
    }
}

bool punctuation(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    const utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

bool cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool cased(int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

bool case_ignorable(int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_LM ||
           k == UTF8PROC_CATEGORY_SK || c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xB7 || c == 0x2019 || c == 0x2018;
}

// Lower case, with Unicode's one context-dependent rule: capital sigma at the end of a word is final sigma (ς).
void lower_case(std::vector<int32_t>& s) {
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != 0x03A3) {
            s[i] = utf8proc_tolower(s[i]);
            continue;
        }
        auto cased_from = [&](size_t j, int dir) {
            for (; j < s.size(); j += static_cast<size_t>(dir))
                if (!case_ignorable(s[j])) return cased(s[j]);
            return false;
        };
        const bool before = i > 0 && cased_from(i - 1, -1);
        const bool after = cased_from(i + 1, 1);
        s[i] = before && !after ? 0x03C2 : 0x03C3;
    }
}

std::vector<int32_t> codepoints(const std::string& s) {
    std::vector<int32_t> out;
    out.reserve(s.size());
    for (utf8proc_ssize_t i = 0, n = static_cast<utf8proc_ssize_t>(s.size()); i < n;) {
        utf8proc_int32_t c;
        const utf8proc_ssize_t k = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + i, n - i, &c);
        if (k <= 0) {  // invalid UTF-8: U+FFFD, which cleaning drops
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        out.push_back(c);
        i += k;
    }
    return out;
}

}  // namespace

void Vocab::encode_wpm(const std::string& text, std::vector<int32_t>& out) const {
    // 1–3: normalise, code point by code point.
    std::vector<int32_t> norm;
    for (int32_t c : codepoints(text)) {
        if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && other(c))) continue;
        if (white_space(c)) {
            norm.push_back(' ');
            continue;
        }
        if (cjk(c)) {
            norm.insert(norm.end(), {' ', c, ' '});
            continue;
        }
        utf8proc_int32_t dec[32];
        int last = 0;
        const utf8proc_ssize_t n = utf8proc_decompose_char(c, dec, 32, UTF8PROC_DECOMPOSE, &last);
        for (utf8proc_ssize_t k = 0; k < std::max<utf8proc_ssize_t>(n, 0) && k < 32; ++k)
            if (utf8proc_category(dec[k]) != UTF8PROC_CATEGORY_MN) norm.push_back(dec[k]);
    }
    lower_case(norm);
    // 4: words.
    std::vector<std::vector<int32_t>> words;
    std::vector<int32_t> w;
    auto end_word = [&] {
        if (!w.empty()) words.push_back(std::move(w));
        w.clear();
    };
    for (int32_t c : norm) {
        if (c == ' ') {
            end_word();
        } else if (punctuation(c)) {
            end_word();
            words.push_back({c});
        } else {
            w.push_back(c);
        }
    }
    end_word();
    // 5: pieces, longest first.
    std::string piece;
    for (const auto& word : words) {
        if (word.size() > 100) {
            out.push_back(unk);
            continue;
        }
        std::vector<std::string> chars;  // each code point's UTF-8
        for (int32_t c : word) {
            std::string s;
            utf8_append(s, static_cast<char32_t>(c));
            chars.push_back(std::move(s));
        }
        const size_t mark = out.size();
        bool bad = false;
        for (size_t start = 0; start < chars.size() && !bad;) {
            int32_t found = -1;
            size_t end = chars.size();
            for (; end > start; --end) {
                piece = start == 0 ? kWordStart : std::string();
                for (size_t k = start; k < end; ++k) piece += chars[k];
                found = find(piece);
                if (found >= 0) break;
            }
            if (found < 0) bad = true;
            else out.push_back(found);
            start = end;
        }
        if (bad) {
            out.resize(mark);
            out.push_back(unk);
        }
    }
}

// ------------------------------------------------------------------------------------- Hugging Face tokenizer.json

namespace {

bool bracketed(const std::string& p) { return p.size() >= 2 && p.front() == '[' && p.back() == ']'; }

}  // namespace

// GGUF piece → vocab.txt piece: "▁word" → "word", a bare continuation "ing" → "##ing", "[CLS]"-style tokens as they are
// (llama.cpp's conversion in reverse).
std::string Vocab::wordpiece_hf_json() const {
    using ojson = nlohmann::ordered_json;
    ojson j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    ojson added = ojson::array();
    for (int32_t i = 0; i < size(); ++i) {
        const TokenType t = types[static_cast<size_t>(i)];
        if (t != TokenType::Control && t != TokenType::Unknown) continue;
        added.push_back({{"id", i}, {"content", pieces[static_cast<size_t>(i)]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                         {"normalized", false}, {"special", true}});
    }
    j["added_tokens"] = added;
    j["normalizer"] = {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}, {"strip_accents", nullptr}, {"lowercase", true}};
    j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
    ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
    auto special = [&](int32_t id, int type_id) {
        const std::string& p = pieces[static_cast<size_t>(id)];
        specials[p] = {{"id", p}, {"ids", {id}}, {"tokens", {p}}};
        return ojson{{"SpecialToken", {{"id", p}, {"type_id", type_id}}}};
    };
    for (int seq = 0; seq < 2; ++seq) {
        ojson& out = seq == 0 ? single : pair;
        if (bos >= 0) out.push_back(special(bos, 0));
        for (int k = 0; k <= seq; ++k) {
            out.push_back({{"Sequence", {{"id", k == 0 ? "A" : "B"}, {"type_id", k}}}});
            if (eos >= 0) out.push_back(special(eos, k));
        }
    }
    j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
    j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
    ojson vocab = ojson::object();
    for (int32_t i = 0; i < size(); ++i) {
        const std::string& p = pieces[static_cast<size_t>(i)];
        std::string hf = p.compare(0, kWordStart.size(), kWordStart) == 0 ? p.substr(kWordStart.size()) : bracketed(p) ? p : "##" + p;
        if (!vocab.contains(hf)) vocab[hf] = i;
    }
    j["model"] = {{"type", "WordPiece"}, {"unk_token", unk >= 0 ? ojson(pieces[static_cast<size_t>(unk)]) : ojson(nullptr)},
                  {"continuing_subword_prefix", "##"}, {"max_input_chars_per_word", 100}, {"vocab", vocab}};
    return j.dump(1) + "\n";
}

bool Vocab::is_wordpiece_hf_json(const std::string& text) {
    try {
        const nlohmann::json j = nlohmann::json::parse(text);
        return j.contains("model") && j["model"].is_object() && j["model"].value("type", std::string()) == "WordPiece";
    } catch (const nlohmann::json::exception&) {
        return false;
    }
}

Vocab Vocab::from_hf_wordpiece_json(const std::string& text, const std::string& origin, const std::string& config_text) try {
    using json = nlohmann::json;
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw_bad_input("%s: malformed JSON (%s)", origin.c_str(), e.what());
    }
    // What llmforge's WordPiece does: BERT's uncased normalisation. Anything else is refused rather than misread.
    const json norm = j.value("normalizer", json());
    if (!norm.is_object() || norm.value("type", std::string()) != "BertNormalizer")
        throw_bad_input("%s: a WordPiece tokenizer without BertNormalizer is not supported", origin.c_str());
    if (!norm.value("lowercase", true) || !norm.value("clean_text", true) || !norm.value("handle_chinese_chars", true) ||
        (norm.contains("strip_accents") && norm["strip_accents"].is_boolean() && !norm["strip_accents"].get<bool>()))
        throw_bad_input("%s: a cased WordPiece tokenizer (BertNormalizer without lowercase, accent stripping, cleaning or CJK "
                        "splitting) is not supported: llmforge's WordPiece is BERT's uncased one", origin.c_str());
    const json pre = j.value("pre_tokenizer", json());
    if (!pre.is_object() || pre.value("type", std::string()) != "BertPreTokenizer")
        throw_bad_input("%s: a WordPiece tokenizer without BertPreTokenizer is not supported", origin.c_str());
    Vocab v;
    v.model = "bert";
    v.add_space_prefix = false;
    try {
        const json& m = j.at("model");
        if (m.value("continuing_subword_prefix", std::string("##")) != "##" || m.value("max_input_chars_per_word", 100) != 100)
            throw_bad_input("%s: WordPiece with a continuing prefix other than '##' or another word limit than 100 is not supported", origin.c_str());
        int32_t n = 0;
        for (auto it = m.at("vocab").begin(); it != m["vocab"].end(); ++it) n = std::max(n, hf_token_id(it.value(), origin) + 1);
        for (const json& a : j.value("added_tokens", json::array())) n = std::max(n, hf_token_id(a.at("id"), origin) + 1);
        if (n <= 0 || n > (1 << 24)) throw_bad_input("%s: a vocabulary of %d tokens", origin.c_str(), n);
        v.pieces.assign(static_cast<size_t>(n), std::string());
        v.types.assign(static_cast<size_t>(n), TokenType::Unused);
        for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
            const int32_t id = hf_token_id(it.value(), origin);
            const std::string& p = it.key();
            v.pieces[static_cast<size_t>(id)] = p.compare(0, 2, "##") == 0 ? p.substr(2) : bracketed(p) ? p : kWordStart + p;
            v.types[static_cast<size_t>(id)] = TokenType::Normal;
        }
        for (const json& a : j.value("added_tokens", json::array())) {
            const int32_t id = hf_token_id(a.at("id"), origin);
            v.pieces[static_cast<size_t>(id)] = a.at("content").get<std::string>();
            v.types[static_cast<size_t>(id)] = a.value("special", false) ? TokenType::Control : TokenType::UserDefined;
        }
        const std::string unk_piece = m.value("unk_token", std::string("[UNK]"));
        v.unk = -1;
        for (int32_t i = 0; i < n; ++i)
            if (v.pieces[static_cast<size_t>(i)] == unk_piece) v.unk = i;
        if (v.unk < 0) throw_bad_input("%s: the unknown token '%s' is not in the vocabulary", origin.c_str(), unk_piece.c_str());
        v.types[static_cast<size_t>(v.unk)] = TokenType::Unknown;
    } catch (const json::exception& e) {
        throw_bad_input("%s: not a WordPiece tokenizer.json (%s)", origin.c_str(), e.what());
    }
    v.bos = v.eos = -1;
    apply_hf_special_tokens(v, j.value("post_processor", json()), "", origin);
    v.add_bos = v.bos >= 0;
    v.add_eos = v.eos >= 0;
    (void)config_text;  // BERT's tokenizer_config.json repeats the post-processor's [CLS] and [SEP]
    v.finalize();
    return v;
} catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type that .value() or .get() met
    throw_bad_input("%s: unexpected tokenizer.json structure (%s)", origin.c_str(), e.what());
}

}  // namespace llmforge
