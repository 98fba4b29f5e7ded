// Chat templates: the Jinja lexer, parser and interpreter, under the sandbox's limits (jinja::Limits), rendering a
// conversation. Input: the template, then optionally "\n#####\n" and a JSON context (an object) that replaces the
// default one — a bounded context: the fuzzer's JSON is at most its input.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "llmforge/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const auto p = fuzz::parts(data, n, 2);
    nlohmann::ordered_json ctx = {
        {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Hello!"}}}},
        {"add_generation_prompt", true}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
    if (!p[1].empty()) {
        auto j = nlohmann::ordered_json::parse(p[1].begin(), p[1].end(), nullptr, false);
        if (j.is_discarded() || !j.is_object()) return 0;
        ctx = std::move(j);
    }
    FUZZ_EXPECTING_ERRORS({
        llmforge::jinja::Options o;
        o.now = [] { return std::time_t(1700000000); };
        llmforge::jinja::Template t{std::string(p[0]), o};
        (void)t.render(ctx);
    });
    return 0;
}
