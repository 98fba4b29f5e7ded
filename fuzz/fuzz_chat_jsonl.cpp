// Fine-tuning data: conversation JSONL ({"messages": [...]} per line, tools too) and preference JSONL ({"prompt",
// "chosen", "rejected"}), read as `llmforge sft` / `align` read them, through a small model's vocabulary and ChatML.
// Input: the file; its first byte chooses the reader (even: conversations, odd: preferences) and whether bad lines
// are skipped or stop the read.
#include "fuzz_common.h"
#include "llmforge/align.h"
#include "llmforge/chat_data.h"
#include "llmforge/chat_template.h"
#include "llmforge/model.h"

namespace {
const llmforge::ChatFormat& format() {
    static const llmforge::Model m = llmforge::init_random(llmforge::preset("llama-tiny"), llmforge::DType::F32, 1);
    static const llmforge::ChatFormat f(*m.vocab);
    return f;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    if (n == 0) return 0;
    const llmforge::ChatFormat& fmt = format();
    const std::string path = fuzz::file("data.jsonl", {reinterpret_cast<const char*>(data) + 1, n - 1});
    llmforge::ChatDataOptions o;
    o.skip_bad = data[0] & 2;
    o.max_tokens = data[0] & 4 ? 64 : 0;
    FUZZ_EXPECTING_ERRORS({
        if (data[0] & 1) (void)llmforge::align::load_preferences_jsonl(path, fmt, o);
        else (void)llmforge::load_chat_jsonl(path, fmt, o);
    });
    return 0;
}
