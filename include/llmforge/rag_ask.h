// Answers from an index with a chat model: retrieve, keep the relevant chunks that fit in the model's context as
// numbered sources, and answer through the model's chat template with [n] citations.
//
//   rag::Index kb("kb");
//   ChatFormat fmt(*model.vocab);
//   ChatSession chat(model, pool, fmt, sampling);
//   rag::Answer a = rag::ask(kb, chat, fmt, "how do I read a file?", {}, print_piece);
//   for (int n : a.cited) … a.sources[n - 1] …
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmforge/chat_session.h"
#include "llmforge/rag.h"

namespace llmforge::rag {

// How a hybrid query fuses its rankings, as `rag query --json`, `rag eval --json` and POST /v1/retrieve report it:
// {"method": "rrf"|"convex", "candidates", and "k" (rrf) or "alpha" (convex)}.
nlohmann::json fusion_json(const QueryOptions& q);

struct AskOptions {
    QueryOptions query;          // the retrieval (k: how many sources at most)
    Relevance relevance;         // hits below it are not sources; none left: no answer
    int32_t max_tokens = -1;     // the answer's tokens at most (-1: until the end of the turn)
    std::string system = kGroundedInstruction;  // the system prompt
};

struct Answer {
    bool answered = false;       // false: no retrieved chunk was relevant, and nothing was generated
    std::vector<Hit> retrieved;  // what retrieval returned
    std::vector<Hit> sources;    // the relevant hits that fit in the context, numbered from 1 in the prompt
    double lead = 0;             // lead(retrieved): below Relevance::min_lead, nothing is answered
    size_t dropped = 0;          // relevant hits left out to fit the context (the lowest ranked)
    std::string prompt;          // the user turn (grounded_prompt)
    std::string text;            // the answer
    std::vector<int> cited;      // the source numbers the answer cites (citations)
    ChatSession::Reply reply;    // stop reason, token counts and timings
};

// Answers one question. The session's conversation is reset first and its system prompt set to o.system; fmt must be
// the session's chat format. The sources are cut to fit the context with room for the answer (the session's rule:
// max_tokens, or a quarter of the context up to 256 tokens); a bad-input Error when the question alone does not fit.
// on_text receives the answer as it is written and may return false to stop it.
Answer ask(const Index& index, ChatSession& chat, const ChatFormat& fmt, const std::string& question, const AskOptions& o,
           const std::function<bool(const std::string&)>& on_text = nullptr);

// ---- evaluation of answers ----------------------------------------------------------------------------------------
struct AnswerEvalOptions {
    AskOptions ask;
    int bootstrap = 1000;    // resamples of the questions for the 95 % intervals (0: none)
    uint64_t seed = 1;
    const std::atomic<bool>* stop = nullptr;
    bool progress = true;
    // Called after each question (its index in qa and its answer), e.g. to write the answers out.
    std::function<void(size_t, const Answer&)> on_answer;
};
struct AnswerEval {
    size_t questions = 0;
    size_t answered = 0;     // questions with relevant sources (the others get no answer)
    size_t citing = 0;       // answers that cite at least one source
    size_t citations = 0;    // sources cited, over all answers
    // The cited sources that are chunks of a gold document, over all cited sources (a ratio pooled over the questions).
    Estimate citation_precision;
    // The questions whose answer cites a chunk of a gold document, over all questions.
    Estimate gold_cited;
    // ROUGE-L F-measure (rouge-score's, with Porter stemming) of the answer without its citation marks against the
    // question's gold answer; an unanswered question scores 0. Only over questions with a gold answer.
    Estimate rouge_l;
    size_t with_reference = 0;  // questions with a gold answer
};
// Answers every question (ask) and scores the answers: citation precision against the gold documents, ROUGE-L against
// the gold answers.
AnswerEval evaluate_answers(const Index& index, ChatSession& chat, const ChatFormat& fmt, const std::vector<QaItem>& qa, const AnswerEvalOptions& o);

}  // namespace llmforge::rag
