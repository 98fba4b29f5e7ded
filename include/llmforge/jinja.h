// Chat templates: a Jinja2 interpreter for the templates models ship (tokenizer.chat_template in GGUF, chat_template
// in tokenizer_config.json), rendering them as Hugging Face transformers does. transformers renders with
// jinja2.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) plus the loop-controls extension, the
// `generation` block tag, the globals raise_exception() and strftime_now(), and a tojson filter that keeps non-ASCII
// characters; values follow Python's semantics (str(), repr(), json.dumps(), slicing, truthiness, Undefined).
//
// Supported: {{ }}, {% %}, {# #}, whitespace control (-, +), raw; if/elif/else, for (unpacking, loop.*, `if`
// filter, else, break, continue), set (names, tuples, namespace attributes, block set), macro, filter blocks,
// generation; the expression grammar with Jinja's precedence; the builtin filters and tests templates use; Python's
// str/dict/list methods (strip, split, startswith, get, items, …); range, namespace, dict.
#pragma once
#include <ctime>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace llmforge::jinja {

struct Options {
    bool trim_blocks = true;    // drop the first newline after a block tag (transformers: on)
    bool lstrip_blocks = true;  // strip spaces and tabs before a block tag at the start of a line (transformers: on)
    std::function<std::time_t()> now;  // the clock strftime_now() reads (default: the system clock), for tests
};

// A parsed template. The constructor throws llmforge::Error (bad input) for a syntax error, naming the line.
class Template {
public:
    explicit Template(const std::string& source, Options opts = {});
    ~Template();
    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;

    // Renders with the variables of `context` (a JSON object). Throws llmforge::Error (bad input) where Jinja raises:
    // raise_exception(), an undefined value used in an operation, iterating None, a type error.
    std::string render(const nlohmann::ordered_json& context) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Python's json.dumps(value, ensure_ascii=False, indent=indent) — the tojson filter (indent < 0: one line).
std::string python_json(const nlohmann::ordered_json& value, int indent = -1);

}  // namespace llmforge::jinja
