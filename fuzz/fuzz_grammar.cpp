// Structured output: GBNF grammars (parsed, then a matcher fed bytes), JSON Schema → GBNF, and regular expressions →
// GBNF. Input: the first byte chooses which; the rest is the grammar, schema or pattern, and for GBNF an optional
// "\n#####\n" and text fed to the matcher.
#include "fuzz_common.h"
#include "llmforge/grammar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    if (n == 0) return 0;
    const auto p = fuzz::parts(data + 1, n - 1, 2);
    FUZZ_EXPECTING_ERRORS({
        std::string gbnf;
        switch (data[0] % 3) {
            case 0: gbnf = std::string(p[0]); break;
            case 1: gbnf = llmforge::json_schema_to_gbnf(p[0]); break;
            case 2: gbnf = llmforge::regex_to_gbnf(p[0]); break;
        }
        auto g = llmforge::Grammar::parse(gbnf);
        llmforge::GrammarMatcher m(g);
        const std::string_view text = p[1].empty() ? std::string_view("{\"a\": [1, 2.5, \"x\", true, null]}") : p[1];
        for (size_t i = 0; i < text.size(); i += 3)
            if (!m.accept(text.substr(i, 3))) break;
    });
    return 0;
}
