// SentencePiece-style vocabularies (LLaMA's, llama2.c's) in the form Hugging Face stores them: tokenizer.json with a
// BPE model over "▁"-escaped pieces with byte fallback — the file transformers' LlamaTokenizerFast reads (its
// convert_slow_tokenizer writes the same) — and tokenizer_config.json for the special tokens and the chat template.
//
// SentencePiece's BPE merges the adjacent pair whose merged piece has the highest score; a BPE tokenizer.json merges
// the pair of lowest rank. The two agree when the merges list every split (left, right) of every piece, ranked by the
// piece's score (highest first), splits of one piece by the ids of their parts: transformers' generate_merges does
// exactly this. Reading such a file back, a piece's score is minus the rank of its first merge, which orders the merges
// as the file does, so encoding gives the same ids either way (original scores are not stored by tokenizer.json).
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/json_int.h"
#include "core/mmap_file.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/tokenizer.h"
#include "llmforge/utf8.h"
#include "tokenizer/vocab_hf.h"

namespace llmforge {

int32_t hf_token_id(const nlohmann::json& id, const std::string& origin) {
    return static_cast<int32_t>(json_integer(id, 0, (int64_t{1} << 24) - 1, origin + ": token id"));
}

using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

namespace {

const std::string kSpace = "\xe2\x96\x81";  // "▁"

// Byte offsets of the UTF-8 character boundaries inside s (excluding 0 and s.size()).
std::vector<size_t> char_cuts(const std::string& s) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) cuts.push_back(i);
    return cuts;
}

bool mergeable(TokenType t) { return t == TokenType::Normal || t == TokenType::UserDefined; }

}  // namespace

std::string Vocab::to_hf_json() const {
    if (bpe) return bpe->to_hf_json();
    if (model == "bert") return wordpiece_hf_json();
    const int32_t n = size();
    ojson j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    // control and unknown tokens (and user-defined ones) are added tokens, matched before the model sees the text
    ojson added = ojson::array();
    for (int32_t i = 0; i < n; ++i) {
        const TokenType t = types[static_cast<size_t>(i)];
        if (t != TokenType::Control && t != TokenType::Unknown && t != TokenType::UserDefined) continue;
        if (pieces[static_cast<size_t>(i)].empty()) continue;
        added.push_back({{"id", i}, {"content", pieces[static_cast<size_t>(i)]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                         {"normalized", t == TokenType::UserDefined}, {"special", t != TokenType::UserDefined}});
    }
    j["added_tokens"] = added;
    // SentencePiece's normalisation: a space before the text (add_dummy_prefix), spaces written as "▁"
    ojson norms = ojson::array();
    if (add_space_prefix) norms.push_back({{"type", "Prepend"}, {"prepend", kSpace}});
    norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}});
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", norms}};
    j["pre_tokenizer"] = nullptr;
    // BOS (and EOS) around each sequence, as add_bos / add_eos ask
    ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
    auto special = [&](int32_t id) {
        const std::string& p = pieces[static_cast<size_t>(id)];
        specials[p] = {{"id", p}, {"ids", {id}}, {"tokens", {p}}};
        return ojson{{"SpecialToken", {{"id", p}, {"type_id", 0}}}};
    };
    for (int seq = 0; seq < 2; ++seq) {
        ojson& out = seq == 0 ? single : pair;
        for (int k = 0; k <= seq; ++k) {
            if (add_bos && bos >= 0) out.push_back(special(bos));
            out.push_back({{"Sequence", {{"id", k == 0 ? "A" : "B"}, {"type_id", k}}}});
            if (add_eos && eos >= 0) out.push_back(special(eos));
        }
    }
    j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
    ojson decs = ojson::array();
    decs.push_back({{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}});
    decs.push_back({{"type", "ByteFallback"}});
    decs.push_back({{"type", "Fuse"}});
    if (add_space_prefix) decs.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    j["decoder"] = {{"type", "Sequence"}, {"decoders", decs}};
    // the model: every piece, and the merges by score
    ojson vocab = ojson::object();
    for (int32_t i = 0; i < n; ++i)
        if (!vocab.contains(pieces[static_cast<size_t>(i)])) vocab[pieces[static_cast<size_t>(i)]] = i;
    struct M { int32_t l, r; float score; };
    std::vector<M> merges;
    for (int32_t i = 0; i < n; ++i) {
        if (!mergeable(types[static_cast<size_t>(i)])) continue;
        const std::string& p = pieces[static_cast<size_t>(i)];
        std::vector<M> local;
        for (size_t cut : char_cuts(p)) {
            const int32_t l = find(p.substr(0, cut)), r = find(p.substr(cut));
            if (l >= 0 && r >= 0 && mergeable(types[static_cast<size_t>(l)]) && mergeable(types[static_cast<size_t>(r)]))
                local.push_back({l, r, scores[static_cast<size_t>(i)]});
        }
        std::sort(local.begin(), local.end(), [](const M& a, const M& b) { return a.l != b.l ? a.l < b.l : a.r < b.r; });
        merges.insert(merges.end(), local.begin(), local.end());
    }
    std::stable_sort(merges.begin(), merges.end(), [](const M& a, const M& b) { return a.score > b.score; });
    ojson ml = ojson::array();
    for (const M& m : merges) ml.push_back(pieces[static_cast<size_t>(m.l)] + " " + pieces[static_cast<size_t>(m.r)]);
    const std::string unk_piece = unk >= 0 ? pieces[static_cast<size_t>(unk)] : std::string();
    j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk >= 0 ? ojson(unk_piece) : ojson(nullptr)},
                  {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", true}, {"byte_fallback", true},
                  {"ignore_merges", false}, {"vocab", vocab}, {"merges", ml}};
    return j.dump(1) + "\n";
}

std::string Vocab::hf_tokenizer_config(int64_t model_max_length) const {
    ojson j;
    auto piece = [&](int32_t id) { return id >= 0 && id < size() && !pieces[static_cast<size_t>(id)].empty() ? ojson(pieces[static_cast<size_t>(id)]) : ojson(nullptr); };
    if (model == "bert") {
        j["tokenizer_class"] = "BertTokenizerFast";
        j["do_lower_case"] = true;
        j["cls_token"] = piece(bos);
        j["sep_token"] = piece(eos);
        j["unk_token"] = piece(unk);
        j["clean_up_tokenization_spaces"] = true;
        if (model_max_length > 0) j["model_max_length"] = model_max_length;
        return j.dump(2) + "\n";
    }
    if (!bpe) {
        j["tokenizer_class"] = "LlamaTokenizerFast";
        j["add_bos_token"] = add_bos;
        j["add_eos_token"] = add_eos;
        j["legacy"] = true;  // a space prefix after special tokens too (llama.cpp's and SentencePiece's behaviour)
    }
    j["bos_token"] = piece(bos);
    j["eos_token"] = piece(eos);
    if (!bpe) j["unk_token"] = piece(unk);
    j["clean_up_tokenization_spaces"] = false;
    if (model_max_length > 0) j["model_max_length"] = model_max_length;
    if (!chat_template.empty()) j["chat_template"] = chat_template;
    return j.dump(2) + "\n";
}

bool Vocab::is_spm_hf_json(const std::string& text) {
    try {
        const json j = json::parse(text);
        return j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].value("type", std::string()) == "BPE" &&
               j["model"].value("byte_fallback", false);
    } catch (const json::exception&) {
        return false;
    }
}

// BOS and EOS of a tokenizer.json as transformers sees them: the post-processor's TemplateProcessing (alone or inside a
// Sequence, as Llama 3's) puts a special token before the text (BOS, added when encoding) and after it (EOS); then
// tokenizer_config.json, when given, names bos_token / eos_token and says add_bos_token / add_eos_token.
void apply_hf_special_tokens(Vocab& v, const nlohmann::json& post, const std::string& config_text, const std::string& origin) try {
    using json = nlohmann::json;
    auto id_of = [&](const json& t) -> int32_t {
        const std::string s = t.is_string() ? t.get<std::string>() : t.is_object() ? t.value("content", std::string()) : std::string();
        for (int32_t i = 0; i < v.size() && !s.empty(); ++i)
            if (v.pieces[static_cast<size_t>(i)] == s) return i;
        return -1;
    };
    auto template_processing = [&](const json& p) {
        const json single = p.value("single", json::array());
        for (size_t k = 0; k < single.size(); ++k)
            if (single[k].contains("SpecialToken")) {
                const int32_t id = id_of(single[k]["SpecialToken"].value("id", std::string()));
                if (k == 0) v.bos = id, v.add_bos = id >= 0;
                else v.eos = id, v.add_eos = id >= 0;
            }
    };
    if (post.is_object() && post.value("type", std::string()) == "TemplateProcessing") template_processing(post);
    if (post.is_object() && post.value("type", std::string()) == "Sequence")
        for (const json& p : post.value("processors", json::array()))
            if (p.is_object() && p.value("type", std::string()) == "TemplateProcessing") template_processing(p);
    if (config_text.empty()) return;
    json c;
    try {
        c = json::parse(config_text);
    } catch (const json::exception&) {
        throw_bad_input("%s: tokenizer_config.json beside it is not valid JSON", origin.c_str());
    }
    if (!c.is_object()) return;
    if (c.contains("bos_token") && !c["bos_token"].is_null()) v.bos = id_of(c["bos_token"]);
    if (c.contains("eos_token") && !c["eos_token"].is_null()) v.eos = id_of(c["eos_token"]);
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) v.add_bos = c["add_bos_token"].get<bool>() && v.bos >= 0;
    if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean()) v.add_eos = c["add_eos_token"].get<bool>() && v.eos >= 0;
} catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type that .value() or .get() met
    throw_bad_input("%s: unexpected post_processor or tokenizer_config.json structure (%s)", origin.c_str(), e.what());
}

Vocab Vocab::from_hf_spm_json(const std::string& text, const std::string& origin, const std::string& config_text) try {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw_bad_input("%s: malformed JSON (%s)", origin.c_str(), e.what());
    }
    Vocab v;
    v.model = "llama";
    try {
        const json& m = j.at("model");
        if (!m.at("vocab").is_object()) throw_bad_input("%s: model.vocab is not an object", origin.c_str());
        // pieces by id
        int32_t n = 0;
        for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) n = std::max(n, hf_token_id(it.value(), origin) + 1);
        for (const json& a : j.value("added_tokens", json::array())) n = std::max(n, hf_token_id(a.at("id"), origin) + 1);
        if (n <= 0 || n > (1 << 24)) throw_bad_input("%s: a vocabulary of %d tokens", origin.c_str(), n);
        v.pieces.assign(static_cast<size_t>(n), std::string());
        v.types.assign(static_cast<size_t>(n), TokenType::Unused);
        v.scores.assign(static_cast<size_t>(n), 0.0f);
        for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
            const int32_t id = hf_token_id(it.value(), origin);
            v.pieces[static_cast<size_t>(id)] = it.key();
            v.types[static_cast<size_t>(id)] = it.key().size() == 6 && it.key().compare(0, 3, "<0x") == 0 && it.key()[5] == '>'
                                                   ? TokenType::Byte : TokenType::Normal;
        }
        for (const json& a : j.value("added_tokens", json::array())) {
            const int32_t id = hf_token_id(a.at("id"), origin);
            v.pieces[static_cast<size_t>(id)] = a.at("content").get<std::string>();
            v.types[static_cast<size_t>(id)] = a.value("special", true) ? TokenType::Control : TokenType::UserDefined;
        }
        for (int32_t i = 0; i < n; ++i)
            if (v.types[static_cast<size_t>(i)] == TokenType::Unused) v.pieces[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
        if (m.contains("unk_token") && m["unk_token"].is_string()) {
            for (int32_t i = 0; i < n; ++i)
                if (v.pieces[static_cast<size_t>(i)] == m["unk_token"].get<std::string>()) {
                    v.unk = i;
                    v.types[static_cast<size_t>(i)] = TokenType::Unknown;
                    break;
                }
        } else {
            v.unk = -1;
        }
        // scores: minus the rank of each piece's first merge (see the top of the file)
        std::map<std::string, int32_t> index;
        for (int32_t i = 0; i < n; ++i) index.emplace(v.pieces[static_cast<size_t>(i)], i);
        std::vector<uint8_t> scored(static_cast<size_t>(n), 0);
        const json& merges = m.at("merges");
        for (size_t r = 0; r < merges.size(); ++r) {
            std::string l, rr;
            if (merges[r].is_string()) {
                const std::string s = merges[r].get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos) throw_bad_input("%s: merge %zu ('%s') is not \"left right\"", origin.c_str(), r, s.c_str());
                l = s.substr(0, sp);
                rr = s.substr(sp + 1);
            } else {
                l = merges[r].at(0).get<std::string>();
                rr = merges[r].at(1).get<std::string>();
            }
            const auto it = index.find(l + rr);
            if (index.find(l) == index.end() || index.find(rr) == index.end() || it == index.end())
                throw_bad_input("%s: merge %zu ('%s' + '%s') names a piece that is not in the vocabulary", origin.c_str(), r, l.c_str(), rr.c_str());
            if (!scored[static_cast<size_t>(it->second)]) {
                scored[static_cast<size_t>(it->second)] = 1;
                v.scores[static_cast<size_t>(it->second)] = -static_cast<float>(r) - 1.0f;
            }
        }
    } catch (const json::exception& e) {
        throw_bad_input("%s: not a SentencePiece-style tokenizer.json (%s)", origin.c_str(), e.what());
    }
    // space prefix: a Prepend("▁") normaliser, or a Metaspace pre-tokeniser that prepends
    v.add_space_prefix = false;
    const json norm = j.value("normalizer", json());
    auto scan_norm = [&](const json& x) {
        if (x.is_object() && x.value("type", std::string()) == "Prepend" && x.value("prepend", std::string()) == kSpace) v.add_space_prefix = true;
    };
    if (norm.is_object() && norm.value("type", std::string()) == "Sequence")
        for (const json& x : norm.value("normalizers", json::array())) scan_norm(x);
    else scan_norm(norm);
    const json pre = j.value("pre_tokenizer", json());
    auto scan_pre = [&](const json& x) {
        if (x.is_object() && x.value("type", std::string()) == "Metaspace")
            v.add_space_prefix = x.value("prepend_scheme", std::string(x.value("add_prefix_space", true) ? "always" : "never")) != "never";
    };
    if (pre.is_object() && pre.value("type", std::string()) == "Sequence")
        for (const json& x : pre.value("pretokenizers", json::array())) scan_pre(x);
    else scan_pre(pre);
    v.bos = v.eos = -1;
    v.add_bos = v.add_eos = false;
    apply_hf_special_tokens(v, j.value("post_processor", json()), config_text, origin);
    for (int32_t i = 0; i < v.size() && (v.bos < 0 || v.eos < 0); ++i) {
        if (v.bos < 0 && v.pieces[static_cast<size_t>(i)] == "<s>") v.bos = i;
        if (v.eos < 0 && v.pieces[static_cast<size_t>(i)] == "</s>") v.eos = i;
    }
    v.finalize();
    return v;
} catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type that .value() or .get() met
    throw_bad_input("%s: unexpected tokenizer.json structure (%s)", origin.c_str(), e.what());
}

std::string chat_template_from_tokenizer_config(const std::string& path) try {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& e) {
        throw_bad_input("'%s' is not valid JSON: %s", path.c_str(), e.what());
    }
    if (!j.is_object() || !j.contains("chat_template")) return "";
    const nlohmann::json& t = j["chat_template"];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array())  // named templates: [{"name": "default", "template": "..."}, ...]
        for (const nlohmann::json& e : t)
            if (e.is_object() && e.value("name", "") == "default") return e.value("template", "");
    return "";
} catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type that .value() met
    throw_bad_input("'%s': unexpected chat_template structure (%s)", path.c_str(), e.what());
}

}  // namespace llmforge
