// BPE tokenizer files: Hugging Face tokenizer.json (read and write), tiktoken rank files, GPT-2's encoder.json +
// vocab.bpe, and the BPE vocabularies GGUF stores. Also GPT-2's byte↔unicode mapping and NFC.
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "llmforge/utf8.h"
#include "llmforge/gguf.h"
#include "tokenizer/bpe_impl.h"
#include "tokenizer/vocab_hf.h"

namespace llmforge {

using json = nlohmann::json;

// ---- patterns ------------------------------------------------------------------------------------------------------
// As published: GPT-2's encoder.py, tiktoken's openai_public.py (cl100k_base, o200k_base), Qwen2's tokenizer.json.
namespace bpe_patterns {
const char* const gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const cl100k = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const o200k =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const qwen2 = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace bpe_patterns

namespace {

// DeepSeek-LLM's cased-letter class, from its tokenizer.json (written with code points here).
const char* const kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373})"
    R"(\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481})"
    R"(\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF})"
    R"(\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D})"
    R"(\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139})"
    R"(\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2})"
    R"(\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF})"
    R"(\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
const char* const kCjkRun = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

// ---- GPT-2's byte ↔ unicode mapping: printable bytes stand for themselves, the rest are moved to U+0100 and up.
struct ByteMap {
    std::string to_text[256];
    int32_t from_cp[324];  // code point → byte, -1 if not in the mapping
    ByteMap() {
        std::fill(std::begin(from_cp), std::end(from_cp), -1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            const int cp = printable ? b : 256 + extra++;
            from_cp[cp] = b;
            std::string s;
            if (cp < 0x80) s += static_cast<char>(cp);
            else { s += static_cast<char>(0xc0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3f)); }
            to_text[b] = s;
        }
    }
};
const ByteMap& byte_map() {
    static const ByteMap m;
    return m;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string base_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Token text as a file stores it → bytes: through GPT-2's mapping when every character is in it, else literally.
std::string text_to_bytes(const std::string& text) {
    std::string b;
    if (unicode_text_to_bytes(text, b)) return b;
    return text;
}

bool decode_base64(std::string_view in, std::string& out) {
    static const auto table = [] {
        std::array<int8_t, 256> t{};
        t.fill(-1);
        const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = static_cast<int8_t>(i);
        return t;
    }();
    out.clear();
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;
    for (char c : in) {
        if (c == '=') { ++pad; continue; }
        if (pad) return false;
        const int v = table[static_cast<unsigned char>(c)];
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return pad <= 2 && !out.empty();
}

SplitBehavior parse_behavior(const std::string& s, const std::string& origin) {
    if (s == "Isolated") return SplitBehavior::Isolated;
    if (s == "Removed") return SplitBehavior::Removed;
    if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (s == "Contiguous") return SplitBehavior::Contiguous;
    throw_bad_input("%s: unknown Split behavior '%s'", origin.c_str(), s.c_str());
}

const char* behavior_name(SplitBehavior b) {
    switch (b) {
        case SplitBehavior::Isolated: return "Isolated";
        case SplitBehavior::Removed: return "Removed";
        case SplitBehavior::MergedWithPrevious: return "MergedWithPrevious";
        case SplitBehavior::MergedWithNext: return "MergedWithNext";
        case SplitBehavior::Contiguous: return "Contiguous";
    }
    return "Isolated";
}

struct PreTokState {
    std::vector<SplitRule> rules;
    bool byte_level = false;
    bool add_prefix_space = false;
};

void parse_pre_tokenizer(const json& j, PreTokState& st, const std::string& origin) {
    if (j.is_null()) return;
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) throw_bad_input("%s: pre_tokenizer without a type", origin.c_str());
    const std::string type = j["type"];
    if (type == "Sequence") {
        if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) throw_bad_input("%s: Sequence pre_tokenizer without a list", origin.c_str());
        for (const json& p : j["pretokenizers"]) parse_pre_tokenizer(p, st, origin);
    } else if (type == "Split") {
        SplitRule r;
        const json& pat = j.value("pattern", json());
        if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) r.pattern = pat["Regex"];
        else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) r.pattern = detail::escape_literal(pat["String"]);
        else throw_bad_input("%s: Split pre_tokenizer without a Regex or String pattern", origin.c_str());
        r.behavior = parse_behavior(j.value("behavior", std::string("Isolated")), origin);
        r.invert = j.value("invert", false);
        st.rules.push_back(std::move(r));
    } else if (type == "ByteLevel") {
        st.byte_level = true;
        st.add_prefix_space = j.value("add_prefix_space", false);
        if (j.value("use_regex", true)) st.rules.push_back(SplitRule{bpe_patterns::gpt2, SplitBehavior::Isolated, false});
    } else if (type == "Digits") {
        st.rules.push_back(SplitRule{j.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)", SplitBehavior::Isolated, false});
    } else if (type == "Punctuation") {
        st.rules.push_back(SplitRule{R"([\p{P}!-/:-@\[-`{-~])", parse_behavior(j.value("behavior", std::string("Isolated")), origin), false});
    } else {
        throw_bad_input("%s: pre_tokenizer type '%s' is not supported (byte-level BPE supports Split, ByteLevel, Digits, "
                        "Punctuation, Sequence)", origin.c_str(), type.c_str());
    }
}

bool parse_normalizer(const json& j, const std::string& origin) {
    if (j.is_null()) return false;
    if (!j.is_object() || !j.contains("type")) throw_bad_input("%s: normalizer without a type", origin.c_str());
    const std::string type = j["type"];
    if (type == "NFC") return true;
    if (type == "Sequence") {
        bool nfc = false;
        for (const json& n : j.value("normalizers", json::array())) nfc = parse_normalizer(n, origin) || nfc;
        return nfc;
    }
    throw_bad_input("%s: normalizer type '%s' is not supported (only NFC)", origin.c_str(), type.c_str());
}

}  // namespace

std::string bytes_to_unicode_text(std::string_view bytes) {
    const ByteMap& m = byte_map();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) out += m.to_text[c];
    return out;
}

bool unicode_text_to_bytes(std::string_view text, std::string& out) {
    const ByteMap& m = byte_map();
    out.clear();
    for (size_t i = 0; i < text.size();) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        int cp;
        if (c < 0x80) { cp = c; i += 1; }
        else if ((c & 0xe0) == 0xc0 && i + 1 < text.size()) {
            cp = ((c & 0x1f) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3f);
            i += 2;
        } else return false;
        if (cp >= 324 || m.from_cp[cp] < 0) return false;
        out += static_cast<char>(m.from_cp[cp]);
    }
    return true;
}

std::string nfc_normalize(std::string_view text) {
    // utf8proc needs valid UTF-8: normalise each valid run, pass invalid bytes through.
    std::string out;
    out.reserve(text.size());
    size_t run = 0, i = 0;
    auto flush = [&](size_t end) {
        if (end <= run) return;
        utf8proc_uint8_t* res = nullptr;
        const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + run),
                                                static_cast<utf8proc_ssize_t>(end - run), &res, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (n < 0) out.append(text.data() + run, end - run);
        else out.append(reinterpret_cast<const char*>(res), static_cast<size_t>(n));
        std::free(res);
    };
    while (i < text.size()) {
        utf8proc_int32_t cp;
        const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                                    static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
        if (n > 0) { i += static_cast<size_t>(n); continue; }
        flush(i);
        out += text[i];
        run = ++i;
    }
    flush(text.size());
    return out;
}

// ---- Hugging Face tokenizer.json -----------------------------------------------------------------------------------

BpeTokenizer BpeTokenizer::from_hf_json(const std::string& path) { return from_hf_json_text(read_text_file(path), path); }

BpeTokenizer BpeTokenizer::from_hf_json_text(const std::string& text, const std::string& origin) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw_bad_input("%s: malformed JSON (%s)", origin.c_str(), e.what());
    }
    try {
        if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) throw_bad_input("%s: not a tokenizer.json (no \"model\" object)", origin.c_str());
        const json& m = j["model"];
        const std::string type = m.value("type", std::string("BPE"));
        if (type != "BPE") throw_bad_input("%s: tokenizer model type '%s' is not supported here (byte-level BPE only)", origin.c_str(), type.c_str());
        if (!m.contains("vocab") || !m["vocab"].is_object()) throw_bad_input("%s: model.vocab is missing or not an object", origin.c_str());
        if (!m.contains("merges") || !m["merges"].is_array()) throw_bad_input("%s: model.merges is missing or not a list", origin.c_str());
        if (!m.value("continuing_subword_prefix", json("")).is_null() && !m.value("continuing_subword_prefix", std::string()).empty())
            throw_bad_input("%s: continuing_subword_prefix is not supported", origin.c_str());
        if (!m.value("end_of_word_suffix", json("")).is_null() && !m.value("end_of_word_suffix", std::string()).empty())
            throw_bad_input("%s: end_of_word_suffix is not supported", origin.c_str());
        if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
            throw_bad_input("%s: BPE dropout is not supported (encoding is deterministic)", origin.c_str());

        PreTokState st;
        parse_pre_tokenizer(j.value("pre_tokenizer", json()), st, origin);
        const json& dec = j.value("decoder", json());
        const bool byte_level_decoder = dec.is_object() && dec.value("type", std::string()) == "ByteLevel";
        if (!st.byte_level && !byte_level_decoder)
            throw_bad_input("%s: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer or decoder)", origin.c_str());
        const bool nfc = parse_normalizer(j.value("normalizer", json()), origin);

        // vocabulary: text → id
        std::unordered_map<std::string, int32_t> text_id;
        size_t n = 0;
        for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
            const int32_t id = hf_token_id(it.value(), origin);
            text_id[it.key()] = id;
            n = std::max(n, static_cast<size_t>(id) + 1);
        }
        std::vector<AddedToken> added;
        for (const json& a : j.value("added_tokens", json::array())) {
            if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string())
                throw_bad_input("%s: malformed entry in added_tokens", origin.c_str());
            AddedToken t;
            t.id = hf_token_id(a["id"], origin);
            t.content = a["content"];
            t.special = a.value("special", false);
            t.lstrip = a.value("lstrip", false);
            t.rstrip = a.value("rstrip", false);
            n = std::max(n, static_cast<size_t>(t.id) + 1);
            added.push_back(std::move(t));
        }
        std::vector<std::string> tokens(n);
        std::vector<uint8_t> have(n, 0);
        for (const auto& [t, id] : text_id) {
            tokens[static_cast<size_t>(id)] = text_to_bytes(t);
            have[static_cast<size_t>(id)] = 1;
        }
        for (AddedToken& a : added) {
            // an added token that is also a vocabulary entry keeps its vocabulary bytes out of the BPE index
            tokens[static_cast<size_t>(a.id)] = a.content;
            have[static_cast<size_t>(a.id)] = 1;
        }
        for (size_t i = 0; i < n; ++i)
            if (!have[i]) throw_bad_input("%s: token id %zu is missing from the vocabulary (ids must be contiguous)", origin.c_str(), i);

        std::vector<std::pair<int32_t, int32_t>> merges;
        merges.reserve(m["merges"].size());
        auto id_of = [&](const std::string& t, size_t r) {
            auto it = text_id.find(t);
            if (it == text_id.end()) throw_bad_input("%s: merge %zu names unknown token '%s'", origin.c_str(), r, t.c_str());
            return it->second;
        };
        size_t r = 0;
        for (const json& mg : m["merges"]) {
            std::string a, b;
            if (mg.is_string()) {
                const std::string s = mg;
                const size_t sp = s.find(' ', 1);
                if (sp == std::string::npos) throw_bad_input("%s: merge %zu ('%s') is not two tokens", origin.c_str(), r, s.c_str());
                a = s.substr(0, sp);
                b = s.substr(sp + 1);
            } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
                a = mg[0];
                b = mg[1];
            } else {
                throw_bad_input("%s: merge %zu is neither \"a b\" nor [a, b]", origin.c_str(), r);
            }
            merges.emplace_back(id_of(a, r), id_of(b, r));
            ++r;
        }
        return BpeTokenizer(std::move(tokens), std::move(merges), std::move(st.rules), std::move(added), nfc,
                            m.value("ignore_merges", false), st.add_prefix_space);
    } catch (const json::exception& e) {
        throw_bad_input("%s: unexpected tokenizer.json structure (%s)", origin.c_str(), e.what());
    }
}

std::string BpeTokenizer::to_hf_json() const {
    const Impl& im = *impl_;
    using ojson = nlohmann::ordered_json;
    ojson j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    ojson added = ojson::array();
    std::vector<AddedToken> sorted = im.added;
    std::sort(sorted.begin(), sorted.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
    std::vector<uint8_t> is_added(im.tokens.size(), 0);
    for (const AddedToken& a : sorted) {
        is_added[static_cast<size_t>(a.id)] = 1;
        added.push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", a.lstrip}, {"rstrip", a.rstrip},
                         {"normalized", false}, {"special", a.special}});
    }
    j["added_tokens"] = added;
    j["normalizer"] = im.nfc ? ojson{{"type", "NFC"}} : ojson(nullptr);
    ojson pres = ojson::array();
    for (const SplitRule& r : im.rules)
        pres.push_back({{"type", "Split"}, {"pattern", {{"Regex", r.pattern}}}, {"behavior", behavior_name(r.behavior)}, {"invert", r.invert}});
    pres.push_back({{"type", "ByteLevel"}, {"add_prefix_space", im.add_prefix_space}, {"trim_offsets", false}, {"use_regex", false}});
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", pres}};
    j["post_processor"] = nullptr;
    j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
    ojson vocab = ojson::object();
    for (size_t i = 0; i < im.tokens.size(); ++i) {
        if (is_added[i]) continue;
        if (!im.valid[i]) throw_bad_input("cannot write tokenizer.json: token id %zu is unassigned", i);
        vocab[bytes_to_unicode_text(im.tokens[i])] = static_cast<int32_t>(i);
    }
    ojson merges = ojson::array();
    for (const auto& [a, b] : im.merges)
        merges.push_back(bytes_to_unicode_text(im.tokens[static_cast<size_t>(a)]) + " " + bytes_to_unicode_text(im.tokens[static_cast<size_t>(b)]));
    j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                  {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", im.whole_token_first},
                  {"vocab", vocab}, {"merges", merges}};
    return j.dump(1) + "\n";
}

void BpeTokenizer::save_hf_json(const std::string& path) const {
    const std::string text = to_hf_json();
    AtomicWriter w(path);
    w.write(text.data(), text.size());
    w.commit();
}

// ---- tiktoken rank files -------------------------------------------------------------------------------------------

BpeTokenizer BpeTokenizer::from_tiktoken(const std::string& path, const std::string& pattern, const std::map<std::string, int32_t>& special) {
    const std::string text = read_text_file(path);
    std::vector<std::string> by_rank;
    std::string tok;
    size_t line_no = 0;
    for (size_t i = 0; i < text.size();) {
        size_t end = text.find('\n', i);
        if (end == std::string::npos) end = text.size();
        std::string_view line(text.data() + i, end - i);
        i = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        const size_t sp = line.find(' ');
        if (sp == std::string_view::npos || !decode_base64(line.substr(0, sp), tok))
            throw_bad_input("%s:%zu: not a tiktoken rank line (\"base64 rank\")", path.c_str(), line_no);
        const std::string rank_s(line.substr(sp + 1));
        char* endp = nullptr;
        const long rank = std::strtol(rank_s.c_str(), &endp, 10);
        if (rank_s.empty() || *endp != '\0' || rank < 0 || rank > (1 << 24))
            throw_bad_input("%s:%zu: bad rank '%s'", path.c_str(), line_no, rank_s.c_str());
        if (static_cast<size_t>(rank) >= by_rank.size()) by_rank.resize(static_cast<size_t>(rank) + 1);
        if (!by_rank[static_cast<size_t>(rank)].empty()) throw_bad_input("%s:%zu: rank %ld appears twice", path.c_str(), line_no, rank);
        by_rank[static_cast<size_t>(rank)] = tok;
    }
    if (by_rank.empty()) throw_bad_input("%s: empty tiktoken rank file", path.c_str());
    for (size_t r = 0; r < by_rank.size(); ++r)
        if (by_rank[r].empty()) throw_bad_input("%s: rank %zu is missing (ranks must be contiguous)", path.c_str(), r);

    // The encodings tiktoken names (openai_public.py): pattern and special tokens by file name.
    const std::string name = base_name(path);
    std::string pat = pattern;
    std::map<std::string, int32_t> sp = special;
    auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
    if (has("cl100k_base")) {
        if (pat.empty()) pat = bpe_patterns::cl100k;
        if (sp.empty()) sp = {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|fim_middle|>", 100259}, {"<|fim_suffix|>", 100260}, {"<|endofprompt|>", 100276}};
    } else if (has("o200k_base")) {
        if (pat.empty()) pat = bpe_patterns::o200k;
        if (sp.empty()) sp = {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}};
    } else if (has("p50k_base") || has("r50k_base") || has("gpt2")) {
        if (pat.empty()) pat = bpe_patterns::gpt2;
        if (sp.empty()) sp = {{"<|endoftext|>", 50256}};
    }
    if (pat.empty()) throw_bad_input("%s: unknown tiktoken encoding; give its pre-tokenizer pattern", path.c_str());
    std::vector<AddedToken> added;
    for (const auto& [content, id] : sp) added.push_back(AddedToken{id, content, true, false, false});
    return from_ranks(std::move(by_rank), {SplitRule{pat, SplitBehavior::Isolated, false}}, std::move(added));
}

// ---- GPT-2 encoder.json + vocab.bpe --------------------------------------------------------------------------------

BpeTokenizer BpeTokenizer::from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
    json enc;
    try {
        enc = json::parse(read_text_file(encoder_json));
    } catch (const json::exception& e) {
        throw_bad_input("%s: malformed JSON (%s)", encoder_json.c_str(), e.what());
    }
    if (!enc.is_object()) throw_bad_input("%s: not an encoder.json (token → id object)", encoder_json.c_str());
    const std::string merges_text = read_text_file(vocab_bpe);
    // Assemble the equivalent tokenizer.json and load that: one code path for both formats.
    json j;
    j["model"] = {{"type", "BPE"}, {"vocab", enc}, {"merges", json::array()}};
    std::istringstream in(merges_text);
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line.rfind("#version", 0) == 0) continue;
        // (GPT-2's merges are byte→unicode text: a line that is not UTF-8 is not one; found by fuzz_gpt2_bpe)
        if (!utf8_valid(line)) throw_bad_input("%s:%zu: not UTF-8 text (a merges file holds byte-level BPE pieces)", vocab_bpe.c_str(), line_no);
        j["model"]["merges"].push_back(line);
    }
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    j["decoder"] = {{"type", "ByteLevel"}};
    if (enc.contains("<|endoftext|>")) j["added_tokens"] = json::array({{{"id", enc["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}}});
    return from_hf_json_text(j.dump(), encoder_json);
}

// ---- GGUF ----------------------------------------------------------------------------------------------------------

std::vector<SplitRule> BpeTokenizer::gguf_pre_rules(const std::string& name) {
    // The pre-tokenisers of the model families GGUF names in tokenizer.ggml.pre, as their tokenizer.json files define
    // them (a Sequence of Isolated splits).
    auto rules = [](std::initializer_list<const char*> pats) {
        std::vector<SplitRule> r;
        for (const char* p : pats) r.push_back(SplitRule{p, SplitBehavior::Isolated, false});
        return r;
    };
    if (name == "gpt-2" || name == "mpt" || name == "olmo" || name == "jais" || name == "gpt2") return rules({bpe_patterns::gpt2});
    if (name == "llama-bpe" || name == "llama3" || name == "dbrx" || name == "smaug-bpe" || name == "chatglm-bpe")
        return rules({bpe_patterns::cl100k});
    if (name == "qwen2" || name == "stablelm2") return rules({bpe_patterns::qwen2});
    if (name == "starcoder" || name == "refact" || name == "command-r" || name == "smollm" || name == "codeshell" || name == "exaone")
        return rules({R"(\p{N})", bpe_patterns::gpt2});
    if (name == "falcon")
        return rules({R"([\p{P}\$\+<=>\^~\|`]+)", bpe_patterns::gpt2, "[0-9][0-9][0-9]"});
    if (name == "deepseek-llm")
        return rules({R"([\r\n])", kDeepseekLetters, R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
                      R"(\s+$)", kCjkRun, R"(\p{N}+)"});
    if (name == "deepseek-coder")
        return rules({R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjkRun, R"(\p{N})"});
    if (name == "deepseek-v3")
        return rules({R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
                      R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"});
    if (name == "default")  // no tokenizer.ggml.pre: llama.cpp's fallback for older BPE conversions
        return rules({R"([\p{P}\$\+<=>\^~\|]+)", bpe_patterns::gpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"});
    throw_bad_input("unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", name.c_str());
}

BpeTokenizer BpeTokenizer::from_gguf(const gguf::Metadata& meta, const std::string& origin) {
    const std::string model = meta.get_string("tokenizer.ggml.model", "");
    if (model != "gpt2") throw_bad_input("%s: tokenizer.ggml.model is '%s', not a BPE ('gpt2') vocabulary", origin.c_str(), model.c_str());
    const gguf::Value* toks = meta.find("tokenizer.ggml.tokens");
    if (!toks || toks->type != gguf::Type::ARRAY || toks->elem != gguf::Type::STRING)
        throw_bad_input("%s has no tokenizer.ggml.tokens string array", origin.c_str());
    const size_t n = toks->arr_s.size();
    const gguf::Value* types = meta.find("tokenizer.ggml.token_type");
    if (types && types->arr_i.size() != n) throw_bad_input("%s: tokenizer.ggml.token_type has %zu entries for %zu tokens", origin.c_str(), types->arr_i.size(), n);
    const gguf::Value* mg = meta.find("tokenizer.ggml.merges");
    if (!mg || mg->type != gguf::Type::ARRAY || mg->elem != gguf::Type::STRING) throw_bad_input("%s has no tokenizer.ggml.merges string array", origin.c_str());

    std::vector<std::string> tokens(n);
    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> text_id;
    text_id.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        const std::string& t = toks->arr_s[i];
        const int64_t ty = types ? types->arr_i[i] : 1;
        if ((ty == 3 || ty == 4) && !t.empty()) {  // control and user-defined tokens are matched literally
            added.push_back(AddedToken{static_cast<int32_t>(i), t, ty == 3, false, false});
            tokens[i] = t;
        } else {
            tokens[i] = text_to_bytes(t);
        }
        text_id.emplace(t, static_cast<int32_t>(i));
    }
    std::vector<std::pair<int32_t, int32_t>> merges;
    merges.reserve(mg->arr_s.size());
    for (size_t r = 0; r < mg->arr_s.size(); ++r) {
        const std::string& s = mg->arr_s[r];
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) throw_bad_input("%s: merge %zu ('%s') is not two tokens", origin.c_str(), r, s.c_str());
        auto a = text_id.find(s.substr(0, sp)), b = text_id.find(s.substr(sp + 1));
        if (a == text_id.end() || b == text_id.end()) throw_bad_input("%s: merge %zu ('%s') names an unknown token", origin.c_str(), r, s.c_str());
        merges.emplace_back(a->second, b->second);
    }
    const std::string pre = meta.get_string("tokenizer.ggml.pre", "default");
    return BpeTokenizer(std::move(tokens), std::move(merges), gguf_pre_rules(pre), std::move(added), false, false, false);
}

// ---- any file ------------------------------------------------------------------------------------------------------

BpeTokenizer BpeTokenizer::load(const std::string& path) {
    if (ends_with(path, ".gguf") || gguf::has_magic(path)) {
        const gguf::File f = gguf::read(path);
        return from_gguf(f.meta, path);
    }
    if (ends_with(path, ".tiktoken")) return from_tiktoken(path);
    if (ends_with(path, "vocab.bpe")) {
        const std::string dir = path.substr(0, path.size() - std::string("vocab.bpe").size());
        return from_gpt2_files(dir + "encoder.json", path);
    }
    if (ends_with(path, "encoder.json")) {
        const std::string dir = path.substr(0, path.size() - std::string("encoder.json").size());
        return from_gpt2_files(path, dir + "vocab.bpe");
    }
    const std::string text = read_text_file(path);
    // a tiktoken file under another name: its first line is "base64 integer"
    const size_t nl = text.find('\n'), sp = text.find(' ');
    if (!text.empty() && text[0] != '{' && sp != std::string::npos && sp < nl) return from_tiktoken(path);
    return from_hf_json_text(text, path);
}

}  // namespace llmforge
