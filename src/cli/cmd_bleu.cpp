// llmforge bleu --hyp FILE --ref FILE... : BLEU, chrF/chrF++ and TER with sacreBLEU's definitions and signatures;
// llmforge rouge --pred FILE --ref FILE... : ROUGE-1/2/L/Lsum with rouge-score's definitions.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/textmetrics.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

void check_lengths(const std::string& hyp_path, const std::vector<std::string>& hyps, const std::vector<std::string>& ref_paths,
                   const std::vector<std::vector<std::string>>& refs) {
    for (size_t k = 0; k < refs.size(); ++k)
        if (refs[k].size() != hyps.size())
            throw_bad_input("system and reference streams have different lengths: '%s' has %zu lines, '%s' has %zu",
                            hyp_path.c_str(), hyps.size(), ref_paths[k].c_str(), refs[k].size());
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

}  // namespace

void add_bleu(CLI::App& app) {
    auto* cmd = app.add_subcommand("bleu", "BLEU, chrF and TER of a system output against references, as sacreBLEU computes them. The flags are sacreBLEU's (-i, -m, -b, --tok, --lc, …), not llmforge's usual ones, so that its users' commands carry over");
    struct Opts {
        std::string hyp, metrics = "bleu";
        std::vector<std::string> refs;
        metrics::BleuOptions bleu;
        metrics::ChrfOptions chrf;
        metrics::TerOptions ter;
        int width = 1;
        bool json = false, sentence = false, score_only = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--hyp,-i,--input", o->hyp, "system output, one segment per line ('-': standard input)")->required();
    cmd->add_option("--ref,-r", o->refs, "reference file(s), one segment per line, as many lines as --hyp")->required();
    cmd->add_option("--metrics,-m", o->metrics, "comma-separated: bleu, chrf, ter");
    cmd->add_option("--tokenize,--tok", o->bleu.tokenize, "BLEU tokeniser: 13a, intl, zh, char, none");
    cmd->add_flag("--lowercase,--lc", o->bleu.lowercase, "BLEU: lowercase before scoring");
    cmd->add_option("--smooth,--smooth-method", o->bleu.smooth, "BLEU smoothing: exp, floor, add-k, none");
    cmd->add_option("--smooth-value", o->bleu.smooth_value, "BLEU: the value of floor or add-k smoothing")->default_str("0.1 for floor, 1 for add-k");
    cmd->add_option("--max-ngram-order", o->bleu.max_order, "BLEU: highest n-gram order");
    cmd->add_flag("--effective-order", o->bleu.effective_order, "BLEU: stop at the highest order with matches (sentence-level default)");
    cmd->add_option("--chrf-char-order", o->chrf.char_order, "chrF: character n-gram order");
    cmd->add_option("--chrf-word-order", o->chrf.word_order, "chrF: word n-gram order (2 gives chrF++)");
    cmd->add_option("--chrf-beta", o->chrf.beta, "chrF: weight of recall");
    cmd->add_flag("--chrf-whitespace", o->chrf.whitespace, "chrF: keep whitespace in character n-grams");
    cmd->add_flag("--chrf-lowercase", o->chrf.lowercase, "chrF: lowercase before scoring");
    cmd->add_flag("--chrf-eps-smoothing", o->chrf.eps_smoothing, "chrF: epsilon smoothing (chrF++.py, NLTK, Moses) instead of the effective order");
    cmd->add_flag("--ter-normalized", o->ter.normalized, "TER: Tercom's normalisation (punctuation split, XML entities)");
    cmd->add_flag("--ter-no-punct", o->ter.no_punct, "TER: remove punctuation");
    cmd->add_flag("--ter-asian-support", o->ter.asian_support, "TER: split CJK characters / remove CJK punctuation");
    cmd->add_flag("--ter-case-sensitive", o->ter.case_sensitive, "TER: do not lowercase");
    cmd->add_flag("--sentence-level,--sl", o->sentence, "print a score per segment (BLEU with the effective order, as sacreBLEU)");
    cmd->add_option("--width,-w", o->width, "decimals");
    cmd->add_flag("--score-only,-b", o->score_only, "print only the numbers");
    cmd->add_flag("--json", o->json, "print JSON (sacreBLEU's fields)");
    cmd->callback([o] {
        const auto ms = split_list(o->metrics);
        if (ms.empty()) throw_bad_input("bleu: --metrics is empty");
        for (const auto& m : ms)
            if (m != "bleu" && m != "chrf" && m != "ter") throw_bad_input("bleu: unknown metric '%s' (bleu, chrf, ter)", m.c_str());
        const auto hyps = metrics::read_text_lines(o->hyp);
        std::vector<std::vector<std::string>> refs;
        for (const auto& r : o->refs) refs.push_back(metrics::read_text_lines(r));
        check_lengths(o->hyp, hyps, o->refs, refs);
        if (o->sentence) o->bleu.effective_order = true;
        const metrics::Bleu bleu(o->bleu);
        const metrics::Chrf chrf(o->chrf);
        const metrics::Ter ter(o->ter);
        auto emit = [&](const std::string& name, double score, const std::string& sig, const std::string& line, const std::string& verbose,
                        nlohmann::json& arr) {
            if (o->json) {
                nlohmann::json d = {{"name", name}, {"score", std::stod(metrics::format_score(score, o->width))}, {"signature", sig}};
                if (!verbose.empty()) d["verbose_score"] = verbose;
                std::stringstream ss(sig);
                std::string kv;
                while (std::getline(ss, kv, '|')) {
                    const size_t c = kv.find(':');
                    if (c != std::string::npos) d[kv.substr(0, c)] = kv.substr(c + 1);
                }
                arr.push_back(d);
            } else {
                std::printf("%s\n", o->score_only ? metrics::format_score(score, o->width).c_str() : line.c_str());
            }
        };
        nlohmann::json arr = nlohmann::json::array();
        if (o->sentence) {
            std::vector<std::string> seg(refs.size());
            for (size_t i = 0; i < hyps.size(); ++i) {
                for (size_t k = 0; k < refs.size(); ++k) seg[k] = refs[k][i];
                for (const auto& m : ms) {
                    if (m == "bleu") {
                        const auto s = bleu.sentence(hyps[i], seg);
                        emit("BLEU", s.score, s.signature, s.format(o->width), s.verbose(), arr);
                    } else if (m == "chrf") {
                        const auto s = chrf.sentence(hyps[i], seg);
                        emit(s.name, s.score, s.signature, s.format(o->width), "", arr);
                    } else {
                        const auto s = ter.sentence(hyps[i], seg);
                        emit("TER", s.score, s.signature, s.format(o->width), "", arr);
                    }
                }
            }
        } else {
            for (const auto& m : ms) {
                if (m == "bleu") {
                    const auto s = bleu.corpus(hyps, refs);
                    emit("BLEU", s.score, s.signature, s.format(o->width), s.verbose(), arr);
                } else if (m == "chrf") {
                    const auto s = chrf.corpus(hyps, refs);
                    emit(s.name, s.score, s.signature, s.format(o->width), "", arr);
                } else {
                    const auto s = ter.corpus(hyps, refs);
                    emit("TER", s.score, s.signature, s.format(o->width), "", arr);
                }
            }
        }
        if (o->json) std::printf("%s\n", (arr.size() == 1 ? arr[0] : arr).dump(1).c_str());
    });
}

void add_rouge(CLI::App& app) {
    auto* cmd = app.add_subcommand("rouge", "ROUGE-1/2/L/Lsum of predictions against references, as Google's rouge-score computes them (flags in bleu's sacreBLEU style: -i for the predictions)");
    struct Opts {
        std::string pred, jsonl, types = "rouge1,rouge2,rougeL,rougeLsum";
        std::vector<std::string> refs;
        bool stem = false, json = false, print_tokens = false;
        int bootstrap = 1000;
        uint64_t seed = 42;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--pred,-i", o->pred, "predictions, one per line (then every line is one sentence)")->default_str("none");
    cmd->add_option("--ref,-r", o->refs, "reference file(s), as many lines as --pred");
    cmd->add_option("--jsonl", o->jsonl,
                    "instead of line files: JSONL with {\"prediction\": \"…\", \"references\": [\"…\", …]} (newlines separate sentences for rougeLsum)")->default_str("none");
    cmd->add_option("--types", o->types, "comma-separated: rouge1..rouge9, rougeL, rougeLsum");
    cmd->add_flag("--stem,--use-stemmer", o->stem, "Porter-stem tokens longer than 3 characters");
    cmd->add_option("--bootstrap", o->bootstrap, "bootstrap resamples for the 95 % interval (0: none)");
    cmd->add_option("--seed", o->seed, "seed of the bootstrap");
    cmd->add_flag("--json", o->json, "print one JSON object");
    cmd->add_flag("--print-tokens", o->print_tokens, "print the ROUGE tokens of each --pred line (after stemming with --stem) and stop");
    cmd->callback([o] {
        if (o->print_tokens) {
            if (o->pred.empty()) throw_bad_input("rouge: --print-tokens needs --pred FILE");
            for (const auto& line : metrics::read_text_lines(o->pred)) {
                const auto toks = metrics::rouge_tokenize(line, o->stem);
                std::string out;
                for (size_t i = 0; i < toks.size(); ++i) out += (i ? " " : "") + toks[i];
                std::printf("%s\n", out.c_str());
            }
            return;
        }
        std::vector<std::string> preds;
        std::vector<std::vector<std::string>> refs;  // per item
        if (!o->jsonl.empty()) {
            if (!o->pred.empty() || !o->refs.empty()) throw_bad_input("rouge: give --jsonl or --pred/--ref, not both");
            metrics::read_rouge_jsonl(o->jsonl, preds, refs);
            if (preds.empty()) throw_bad_input("'%s' holds no items", o->jsonl.c_str());
        } else {
            if (o->pred.empty() || o->refs.empty()) throw_bad_input("rouge: give --pred FILE --ref FILE… or --jsonl FILE");
            preds = metrics::read_text_lines(o->pred);
            std::vector<std::vector<std::string>> by_file;
            for (const auto& r : o->refs) by_file.push_back(metrics::read_text_lines(r));
            check_lengths(o->pred, preds, o->refs, by_file);
            refs.assign(preds.size(), {});
            for (size_t i = 0; i < preds.size(); ++i)
                for (const auto& f : by_file) refs[i].push_back(f[i]);
        }
        const auto types = split_list(o->types);
        if (types.empty()) throw_bad_input("rouge: --types is empty");
        nlohmann::json out = nlohmann::json::object();
        std::mt19937_64 rng(o->seed);
        for (const auto& t : types) {
            std::vector<metrics::RougeScore> per;
            for (size_t i = 0; i < preds.size(); ++i) per.push_back(metrics::rouge(t, preds[i], refs[i], o->stem));
            auto mean = [&](const std::vector<size_t>* idx) {
                metrics::RougeScore m;
                const size_t n = idx ? idx->size() : per.size();
                for (size_t k = 0; k < n; ++k) {
                    const auto& s = per[idx ? (*idx)[k] : k];
                    m.precision += s.precision;
                    m.recall += s.recall;
                    m.fmeasure += s.fmeasure;
                }
                m.precision /= static_cast<double>(n);
                m.recall /= static_cast<double>(n);
                m.fmeasure /= static_cast<double>(n);
                return m;
            };
            const metrics::RougeScore mid = mean(nullptr);
            double lo = mid.fmeasure, hi = mid.fmeasure;
            if (o->bootstrap > 0 && per.size() > 1) {
                std::vector<double> fs;
                std::uniform_int_distribution<size_t> pick(0, per.size() - 1);
                std::vector<size_t> idx(per.size());
                for (int b = 0; b < o->bootstrap; ++b) {
                    for (auto& x : idx) x = pick(rng);
                    fs.push_back(mean(&idx).fmeasure);
                }
                std::sort(fs.begin(), fs.end());
                lo = fs[static_cast<size_t>(0.025 * (fs.size() - 1))];
                hi = fs[static_cast<size_t>(0.975 * (fs.size() - 1))];
            }
            if (o->json) {
                out[t] = {{"precision", mid.precision}, {"recall", mid.recall}, {"fmeasure", mid.fmeasure}, {"fmeasure_low", lo}, {"fmeasure_high", hi}};
            } else {
                std::printf("%-10s P = %.4f  R = %.4f  F = %.4f  (95%% bootstrap F: %.4f – %.4f)\n", t.c_str(), mid.precision, mid.recall,
                            mid.fmeasure, lo, hi);
            }
        }
        if (o->json) {
            out["n"] = preds.size();
            out["stem"] = o->stem;
            std::printf("%s\n", out.dump(1).c_str());
        } else {
            std::printf("(%zu items, stemming %s)\n", preds.size(), o->stem ? "on" : "off");
        }
    });
}

}  // namespace llmforge::cli
