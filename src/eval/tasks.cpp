// Task benchmarks: multiple choice by log-likelihood, generative tasks by exact match / BLEU / ROUGE.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "llmforge/chat_template.h"
#include "llmforge/error.h"
#include "llmforge/eval.h"
#include "llmforge/textmetrics.h"
#include "llmforge/tokenizer.h"
#include "llmforge/transformer.h"
#include "llmforge/utf8.h"

namespace llmforge {

using nlohmann::json;

std::pair<double, double> wilson_interval(int64_t k, int64_t n, double z) {
    if (n <= 0) return {0.0, 0.0};
    const double nn = static_cast<double>(n), p = static_cast<double>(k) / nn, z2 = z * z;
    const double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
    const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
    return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

std::vector<EvalItem> load_eval_tasks(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw_bad_input("cannot open task file '%s'", path.c_str());
    std::vector<EvalItem> items;
    std::string line;
    int64_t lineno = 0;
    auto bad = [&](const std::string& why) {
        throw_bad_input("%s:%lld: %s", path.c_str(), static_cast<long long>(lineno), why.c_str());
    };
    auto str = [&](const json& j, const char* key) -> std::string {
        if (!j.contains(key)) return "";
        if (!j[key].is_string()) bad(std::string("\"") + key + "\" must be a string");
        const std::string s = j[key].get<std::string>();
        if (!utf8_valid(s)) bad(std::string("\"") + key + "\" is not valid UTF-8");
        return s;
    };
    auto strs = [&](const json& j, const char* key) {
        std::vector<std::string> out;
        if (!j.contains(key)) return out;
        if (!j[key].is_array()) bad(std::string("\"") + key + "\" must be an array of strings");
        for (const auto& v : j[key]) {
            if (!v.is_string()) bad(std::string("\"") + key + "\" must be an array of strings");
            out.push_back(v.get<std::string>());
            if (!utf8_valid(out.back())) bad(std::string("\"") + key + "\" holds invalid UTF-8");
        }
        return out;
    };
    while (std::getline(f, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        json j;
        try {
            j = json::parse(line);
        } catch (const json::exception& e) {
            bad(std::string("malformed JSON: ") + e.what());
        }
        if (!j.is_object()) bad("each line must be a JSON object");
        EvalItem it;
        it.id = j.contains("id") ? (j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump()) : std::to_string(lineno);
        if (j.contains("choices")) {
            it.context = str(j, "context");
            it.choices = strs(j, "choices");
            if (it.choices.size() < 2) bad("a multiple-choice item needs at least 2 choices");
            if (!j.contains("answer") || !j["answer"].is_number_integer()) bad("\"answer\" (the index of the right choice) is missing");
            it.answer = j["answer"].get<int64_t>();
            if (it.answer < 0 || it.answer >= static_cast<int64_t>(it.choices.size())) bad("\"answer\" is not an index into \"choices\"");
            for (const auto& c : it.choices)
                if (c.empty()) bad("a choice is empty");
        } else if (j.contains("prompt")) {
            it.context = str(j, "prompt");
            it.references = strs(j, "references");
            if (it.references.empty()) bad("a generative item needs \"references\"");
            it.metric = j.contains("metric") ? str(j, "metric") : "exact_match";
            if (it.metric != "exact_match" && it.metric != "bleu" && it.metric != "rouge1" && it.metric != "rouge2" && it.metric != "rougeL")
                bad("unknown metric '" + it.metric + "' (exact_match, bleu, rouge1, rouge2, rougeL)");
        } else {
            bad("an item needs \"choices\" (multiple choice) or \"prompt\" (generative)");
        }
        items.push_back(std::move(it));
    }
    if (items.empty()) throw_bad_input("task file '%s' holds no items", path.c_str());
    return items;
}

namespace {

double log_prob(const float* logits, int64_t V, int32_t tok) {
    double mx = logits[0];
    for (int64_t i = 1; i < V; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
    double s = 0;
    for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
    return static_cast<double>(logits[tok]) - mx - std::log(s);
}

int64_t n_chars(const std::string& s) {
    int64_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

std::string strip(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// Keeps the last n tokens (the context is cut from the left when it does not fit).
void keep_last(std::vector<int32_t>& v, size_t n) {
    if (v.size() > n) v.erase(v.begin(), v.end() - static_cast<std::ptrdiff_t>(n));
}

std::string rstrip_ws(const std::string& s) {
    const size_t e = s.find_last_not_of(" \t\r\n");
    return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}

// How an item's text becomes tokens: plain (the context as it is, BOS as the vocabulary asks) or through a chat
// template (the context as the user's message, then the assistant's generation prompt).
struct Framing {
    const Vocab& vocab;
    const ChatFormat* chat;
    bool add_bos;
    std::string prefix(const std::string& context) const {
        if (!chat) return context;
        nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
        msgs.push_back({{"role", "user"}, {"content", rstrip_ws(context)}});
        return chat->render(msgs, true);
    }
    std::vector<int32_t> encode(const std::string& text) const { return chat ? chat->tokenize(text) : vocab.encode(text, add_bos); }
};

void score_choices(Transformer& tf, const Framing& fr, const EvalItem& it, EvalItemResult& r, std::vector<int32_t>& cached) {
    const int64_t V = tf.model().config.n_vocab;
    const size_t n_ctx = static_cast<size_t>(tf.n_ctx());
    const std::string prefix = fr.prefix(it.context);
    std::vector<int32_t> ctx = fr.encode(prefix);
    for (const auto& choice : it.choices) {
        std::vector<int32_t> whole = fr.encode(prefix + choice);
        // the continuation starts where the tokenisations of context and context+choice part
        size_t common = 0;
        while (common < ctx.size() && common < whole.size() && ctx[common] == whole[common]) ++common;
        if (common == whole.size()) common = whole.size() - 1;  // the choice merged into the context's last token
        if (common == 0) {
            whole.insert(whole.begin(), fr.vocab.bos);  // the first token needs something to be predicted from
            common = 1;
        }
        if (whole.size() > n_ctx) {
            const size_t cut = whole.size() - n_ctx;
            if (cut >= common) throw_bad_input("item %s: a choice alone is longer than the context (%zu tokens)", it.id.c_str(), n_ctx);
            keep_last(whole, n_ctx);
            common -= cut;
        }
        // reuse the cached context: keep the longest cached prefix that precedes the first scored token
        size_t keep = 0;
        while (keep < cached.size() && keep < whole.size() && cached[keep] == whole[keep]) ++keep;
        keep = std::min(keep, common - 1);
        keep = static_cast<size_t>(tf.truncate(static_cast<int64_t>(keep)));  // 0 if a sliding-window cache lost the prefix
        cached.resize(keep);
        const auto& logits = tf.eval(whole.data() + keep, static_cast<int64_t>(whole.size() - keep), true);
        cached.insert(cached.end(), whole.begin() + static_cast<std::ptrdiff_t>(keep), whole.end());
        double lp = 0;  // logits row j predicts the token at keep + j + 1
        for (size_t k = common; k < whole.size(); ++k) lp += log_prob(logits.data() + (k - 1 - keep) * static_cast<size_t>(V), V, whole[k]);
        r.logprobs.push_back(lp);
    }
    r.pred = std::max_element(r.logprobs.begin(), r.logprobs.end()) - r.logprobs.begin();
    double best = -INFINITY;
    for (size_t c = 0; c < it.choices.size(); ++c) {
        const double v = r.logprobs[c] / static_cast<double>(std::max<int64_t>(1, n_chars(it.choices[c])));
        if (v > best) {
            best = v;
            r.pred_norm = static_cast<int64_t>(c);
        }
    }
    r.correct = r.pred == it.answer;
    r.correct_norm = r.pred_norm == it.answer;
}

void generate_answer(Transformer& tf, const Framing& fr, const EvalItem& it, const EvalOptions& o, EvalItemResult& r) {
    const int64_t V = tf.model().config.n_vocab;
    std::vector<int32_t> prompt = fr.encode(fr.prefix(it.context));
    const size_t room = static_cast<size_t>(std::max<int64_t>(1, tf.n_ctx() - o.max_tokens));
    keep_last(prompt, room);
    std::vector<int32_t> stops = fr.chat ? fr.chat->stop_tokens() : std::vector<int32_t>{};
    stops.push_back(fr.vocab.eos);
    tf.reset();
    const float* logits = tf.eval(prompt).data();
    std::vector<int32_t> out;
    std::string text;
    std::unique_ptr<GrammarConstraint> gc;
    std::vector<float> masked;
    if (o.grammar) gc = std::make_unique<GrammarConstraint>(o.grammar);
    for (int64_t n = 0; n < o.max_tokens && tf.n_past() < tf.n_ctx(); ++n) {
        if (gc) {  // greedy over the tokens the grammar allows, and the stops where it may end
            masked.resize(static_cast<size_t>(V));
            gc->mask(logits, masked.data(), V, stops);  // none allowed: caught below
            logits = masked.data();
        }
        const int32_t next = static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
        if (std::find(stops.begin(), stops.end(), next) != stops.end()) break;
        if (gc && (!std::isfinite(logits[next]) || !gc->accept(next)))
            throw_runtime("item %s: no token of the vocabulary can continue the grammar (expected %s)", it.id.c_str(),
                          gc->matcher().expected().c_str());
        out.push_back(next);
        text = fr.vocab.decode(out);
        if (gc) {
            if (!gc->matcher().can_continue()) break;  // the grammar is complete and nothing may follow
        } else if (text.find('\n') != std::string::npos) {
            text = text.substr(0, text.find('\n'));
            break;
        }
        if (tf.n_past() >= tf.n_ctx()) break;
        logits = tf.eval(&next, 1).data();
    }
    r.generation = text;
    const std::string hyp = strip(text);
    if (it.metric == "exact_match") {
        r.score = 0;
        for (const auto& ref : it.references) r.score = std::max(r.score, strip(ref) == hyp ? 1.0 : 0.0);
    } else if (it.metric == "bleu") {
        metrics::BleuOptions bo;
        bo.effective_order = true;
        r.score = metrics::Bleu(bo).sentence(hyp, it.references).score / 100.0;
    } else {
        r.score = metrics::rouge(it.metric, hyp, it.references, true).fmeasure;
    }
}

}  // namespace

EvalSummary evaluate(const Model& model, const std::vector<EvalItem>& items, const EvalOptions& o, ThreadPool& pool, const ItemCallback& on_item) {
    if (!model.vocab) throw_bad_input("the model has no vocabulary: evaluation needs one to tokenise the tasks");
    const Vocab& vocab = *model.vocab;
    std::unique_ptr<ChatFormat> chat;
    if (o.chat) chat = std::make_unique<ChatFormat>(vocab, o.chat_template);
    const Framing fr{vocab, chat.get(), o.add_bos};
    Transformer tf(model, pool, o.n_ctx, 512, DType::F32);
    std::vector<int32_t> cached;  // the tokens in tf's cache (multiple choice reuses a shared context)
    EvalSummary s;
    int64_t k = 0, k_norm = 0;
    double inv_choices = 0, gen_sum = 0, gen_sq = 0;
    for (size_t i = 0; i < items.size(); ++i) {
        const EvalItem& it = items[i];
        EvalItemResult r;
        r.id = it.id;
        if (it.metric.empty()) {
            score_choices(tf, fr, it, r, cached);
            ++s.n_mc;
            k += r.correct;
            k_norm += r.correct_norm;
            inv_choices += 1.0 / static_cast<double>(it.choices.size());
        } else {
            generate_answer(tf, fr, it, o, r);
            cached.clear();
            ++s.n_gen;
            gen_sum += r.score;
            gen_sq += r.score * r.score;
        }
        s.items.push_back(std::move(r));
        if (on_item) on_item(static_cast<int64_t>(i + 1), static_cast<int64_t>(items.size()));
    }
    if (s.n_mc) {
        const double n = static_cast<double>(s.n_mc);
        s.acc = static_cast<double>(k) / n;
        s.acc_norm = static_cast<double>(k_norm) / n;
        std::tie(s.acc_lo, s.acc_hi) = wilson_interval(k, s.n_mc);
        std::tie(s.acc_norm_lo, s.acc_norm_hi) = wilson_interval(k_norm, s.n_mc);
        s.random_baseline = inv_choices / n;
    }
    if (s.n_gen) {
        const double n = static_cast<double>(s.n_gen);
        s.gen_score = gen_sum / n;
        const double var = s.n_gen > 1 ? (gen_sq - n * s.gen_score * s.gen_score) / (n - 1) : 0.0;
        s.gen_stderr = var > 0 ? std::sqrt(var / n) : 0.0;
    }
    return s;
}

}  // namespace llmforge
