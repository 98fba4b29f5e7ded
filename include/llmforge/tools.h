// Tool calling in the OpenAI chat-completions manner: tool definitions checked, the calls a model writes parsed out of
// its text in the formats real chat templates teach, and a grammar that makes a model call a tool.
//
// Formats (what the model writes; the template says which):
//   Hermes  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>, several in a row   (Hermes 2/3, Qwen 2.5/3,
//           and llmforge's own ChatML template)
//   Llama3  {"name": "f", "parameters": {...}}, optionally after <|python_tag|>               (Llama 3.1/3.2/3.3)
//   Mistral [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]                                (Mistral Nemo and kin)
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace llmforge {

enum class ToolCallFormat { Hermes, Llama3, Mistral };
const char* tool_format_name(ToolCallFormat f);
// The format a chat template teaches (Hermes when it shows none of the three).
ToolCallFormat detect_tool_format(const std::string& template_source);

struct ToolCall {
    std::string id, name;
    std::string arguments;  // JSON text of an object, as the OpenAI API carries it
};
struct ToolReply {
    std::string content;  // the text around the calls (trimmed)
    std::vector<ToolCall> calls;
};

// Checks an OpenAI "tools" array ([{"type": "function", "function": {"name", "description"?, "parameters"?,
// "strict"?}}]); throws a bad-input Error naming the problem.
void validate_tools(const nlohmann::ordered_json& tools);

// The calls in a model's text. A call whose JSON does not parse, or names no tool in `tools` (when given), is left in
// the content. ids are made with `rng` (Mistral's templates want 9 letters and digits, others "call_" + 24).
ToolReply parse_tool_calls(const std::string& text, ToolCallFormat f, const nlohmann::ordered_json* tools, std::mt19937_64& rng);

// How much of a reply streamed so far is surely content: the bytes before the first place where a call starts or
// might start (a prefix of the call marker at the end). The rest is held back until the reply ends.
size_t tool_content_prefix(const std::string& text, ToolCallFormat f);

// GBNF for a reply that is nothing but calls, in format f: of the tool named `only` (empty: any of them), with
// arguments following each tool's "parameters" schema; several in a row when `parallel` (Hermes, Mistral).
// A schema that does not compile is a bad-input Error naming the tool.
std::string tool_call_gbnf(const nlohmann::ordered_json& tools, ToolCallFormat f, const std::string& only, bool parallel);

// The text that begins a call in format f ("<tool_call>", "[TOOL_CALLS]", "{\"name\""): with tool_choice "auto", the
// forcing grammar applies from there on (a lazy grammar).
std::string tool_call_trigger(ToolCallFormat f);

// The conversation as chat templates expect it (transformers' convention): an assistant turn's tool-call arguments
// as objects, not the JSON strings the OpenAI API sends.
nlohmann::ordered_json messages_for_template(const nlohmann::ordered_json& messages);

}  // namespace llmforge
