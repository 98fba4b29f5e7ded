// rag::ask: retrieval → numbered sources that fit the context → a streamed answer with citations (rag_ask.h).
#include <algorithm>

#include "core/progress.h"
#include "llmforge/chat_template.h"
#include "llmforge/error.h"
#include "llmforge/textmetrics.h"
#include "llmforge/rag_ask.h"

namespace llmforge::rag {

Answer ask(const Index& index, ChatSession& chat, const ChatFormat& fmt, const std::string& question, const AskOptions& o,
           const std::function<bool(const std::string&)>& on_text) {
    Answer a;
    a.retrieved = index.query(question, o.query);
    a.lead = lead(a.retrieved);
    if (o.relevance.min_lead > 0 && a.lead < o.relevance.min_lead) return a;  // no document stands out: declined
    for (const Hit& h : a.retrieved)
        if (relevant(h, o.relevance)) a.sources.push_back(h);
    if (a.sources.empty()) return a;
    chat.reset();
    chat.set_system(o.system);
    // the room ChatSession::ask keeps for the answer
    const int64_t n_ctx = chat.transformer().n_ctx();
    const int64_t reserve = o.max_tokens < 0 ? std::min<int64_t>(n_ctx / 4, 256) : std::min<int64_t>(o.max_tokens, n_ctx / 2);
    auto tokens = [&](const std::string& user) {
        nlohmann::ordered_json m = nlohmann::ordered_json::array();
        if (!o.system.empty()) m.push_back({{"role", "system"}, {"content", o.system}});
        m.push_back({{"role", "user"}, {"content", user}});
        return static_cast<int64_t>(fmt.encode_prompt(m).size());
    };
    for (;;) {
        a.prompt = grounded_prompt(question, a.sources);
        const int64_t n = tokens(a.prompt);
        if (n + reserve <= n_ctx) break;
        if (a.sources.size() > 1) {  // the lowest-ranked source goes
            a.sources.pop_back();
            ++a.dropped;
            continue;
        }
        // one source left: cut its text (at a character) in proportion to the excess, until it fits or is gone
        std::string& t = a.sources.front().text;
        if (t.empty()) break;  // the question alone is too long: ChatSession::ask says so
        const double keep = std::max(0.0, static_cast<double>(n_ctx - reserve) / static_cast<double>(n) - 0.02);
        size_t cut = std::min(t.size() - 1, static_cast<size_t>(static_cast<double>(t.size()) * keep));
        while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;
        t.resize(cut);
    }
    a.reply = chat.ask(a.prompt, o.max_tokens, on_text);
    a.answered = true;
    a.text = a.reply.text;
    a.cited = citations(a.text, a.sources.size());
    return a;
}

AnswerEval evaluate_answers(const Index& index, ChatSession& chat, const ChatFormat& fmt, const std::vector<QaItem>& qa, const AnswerEvalOptions& o) {
    AnswerEval r;
    r.questions = qa.size();
    std::vector<double> good, cited, any_gold, rouge_l;
    Progress progress("answering", static_cast<double>(qa.size()), "questions", o.progress);
    for (size_t i = 0; i < qa.size(); ++i) {
        if (o.stop && o.stop->load()) throw_runtime("rag eval: interrupted");
        const QaItem& q = qa[i];
        const Answer a = ask(index, chat, fmt, q.question, o.ask, [&](const std::string&) { return !(o.stop && o.stop->load()); });
        double g = 0;
        for (int n : a.cited) {
            const Hit& h = a.sources[static_cast<size_t>(n - 1)];
            for (const std::string& x : q.gold)
                if (source_matches(h.source, x)) {
                    g += 1;
                    break;
                }
        }
        good.push_back(g);
        cited.push_back(static_cast<double>(a.cited.size()));
        any_gold.push_back(g > 0 ? 1.0 : 0.0);
        r.answered += a.answered;
        r.citing += !a.cited.empty();
        r.citations += a.cited.size();
        if (!q.answer.empty()) {
            ++r.with_reference;
            rouge_l.push_back(a.answered ? metrics::rouge("rougeL", strip_citations(a.text), {q.answer}, true).fmeasure : 0.0);
        }
        if (o.on_answer) o.on_answer(i, a);
        progress.add(1);
    }
    progress.finish();
    r.citation_precision = bootstrap_ratio(good, cited, o.bootstrap, o.seed);
    r.gold_cited = bootstrap_mean(any_gold, o.bootstrap, o.seed + 1);
    r.rouge_l = bootstrap_mean(rouge_l, o.bootstrap, o.seed + 2);
    return r;
}

nlohmann::json fusion_json(const QueryOptions& q) {
    nlohmann::json j = {{"method", fusion_name(q.fusion)}, {"candidates", q.candidates}};
    if (q.fusion == Fusion::Rrf) j["k"] = q.rrf_k;
    else j["alpha"] = q.alpha;
    return j;
}

}  // namespace llmforge::rag
