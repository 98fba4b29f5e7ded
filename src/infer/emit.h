// The tokens a generation emits: the end-of-generation check, the result's token list and text, streaming of whole
// UTF-8 characters (generate() and generate_speculative()).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "llmforge/generate.h"
#include "llmforge/utf8.h"

namespace llmforge {

struct TokenEmitter {
    const Vocab& vocab;
    GenerateResult& r;
    std::vector<int32_t>& history;
    const std::function<bool(const std::string&)>& on_text;
    Utf8Stream stream;

    // Emits one token; false when generation ends here (an end-of-generation token, not emitted: stop_reason "eos";
    // the callback asked to stop: "stopped").
    bool emit(int32_t id) {
        if (vocab.is_eog(id)) {
            r.stop_reason = "eos";
            return false;
        }
        r.tokens.push_back(id);
        history.push_back(id);
        const std::string piece = stream.push(vocab.token_to_piece(id));
        r.text += piece;
        if (on_text && !piece.empty() && !on_text(piece)) {
            r.stop_reason = "stopped";
            return false;
        }
        return true;
    }
    void finish() {
        const std::string tail = stream.flush();
        if (tail.empty()) return;
        r.text += tail;
        if (on_text) on_text(tail);
    }
};

}  // namespace llmforge
