// The BLEU / chrF / TER / ROUGE text readers and scorers: hypothesis and reference files read as `llmforge bleu`
// reads them (lines, UTF-8), tokenised by every tokeniser, scored; and the ROUGE JSONL reader. Input: the hypotheses,
// then "\n#####\n", then the references (or, for the JSONL reader, the whole input as one file).
#include "fuzz_common.h"
#include "llmforge/textmetrics.h"

using namespace llmforge::metrics;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const auto p = fuzz::parts(data, n, 2);
    const std::string hyp = fuzz::file("hyp.txt", p[0]), ref = fuzz::file("ref.txt", p[1]);
    FUZZ_EXPECTING_ERRORS({
        const auto h = read_text_lines(hyp);
        const auto r = read_text_lines(ref);
        if (h.size() != r.size() || h.size() > 64) return 0;
        for (const char* tok : {"13a", "intl", "zh", "char", "none"}) {
            BleuOptions bo;
            bo.tokenize = tok;
            (void)Bleu(bo).corpus(h, {r}).format();
        }
        (void)Chrf().corpus(h, {r});
        ChrfOptions cp;
        cp.word_order = 2;
        (void)Chrf(cp).corpus(h, {r});
        (void)Ter().corpus(h, {r});
        for (size_t i = 0; i < h.size(); ++i)
            for (const char* type : {"rouge1", "rouge2", "rougeL", "rougeLsum"}) (void)rouge(type, h[i], {r[i]}, i % 2 == 0);
    });
    const std::string jsonl = fuzz::file("items.jsonl", {reinterpret_cast<const char*>(data), n});
    FUZZ_EXPECTING_ERRORS({
        std::vector<std::string> preds;
        std::vector<std::vector<std::string>> refs;
        read_rouge_jsonl(jsonl, preds, refs);
        for (size_t i = 0; i < preds.size() && i < 64; ++i) (void)rouge("rougeLsum", preds[i], refs[i], true);
    });
    return 0;
}
