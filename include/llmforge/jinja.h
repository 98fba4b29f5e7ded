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

// The sandbox: a chat template from a model file is untrusted code. It has no access to files, the environment or the
// clock beyond strftime_now(), and what one render may spend is bounded; a template that exceeds a bound fails with a
// bad-input Error naming it ("template limit 'iterations' exceeded: …"), never hangs or exhausts memory. Integers are
// 64-bit (an overflow fails, naming the limit 'integer', where Python would grow them).
struct Limits {
    int64_t iterations = 100000;          // loop bodies run and macro calls made, in all
    int depth = 64;                       // macro calls inside macro calls; values nested in values (lists, dicts)
    size_t output_bytes = size_t{16} << 20;  // the rendered text, and any captured block
    size_t alloc_bytes = size_t{64} << 20;   // strings and lists built, in all: bounds what a render can hold
    double seconds = 0.5;                 // wall time
};

struct Options {
    bool trim_blocks = true;    // drop the first newline after a block tag (transformers: on)
    bool lstrip_blocks = true;  // strip spaces and tabs before a block tag at the start of a line (transformers: on)
    std::function<std::time_t()> now;  // the clock strftime_now() reads (default: the system clock), for tests
    Limits limits;
};

// A parsed template. The constructor throws llmforge::Error (bad input) for a syntax error, naming the line, and for
// blocks or expressions nested more than 200 deep.
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
