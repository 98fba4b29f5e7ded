// llmforge chat-template render -t TEMPLATE --messages JSON [--add-generation-prompt] [--context JSON]
// Renders a chat template (a .jinja file, a tokenizer_config.json's chat_template, or a GGUF's tokenizer.chat_template)
// as transformers' apply_chat_template(tokenize=False) does, and prints the text.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/chat_template.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/jinja.h"
#include "llmforge/model.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

// JSON given inline or, with a leading @, read from a file
nlohmann::ordered_json json_arg(const std::string& s, const char* what) {
    std::string text = s;
    if (!s.empty() && s[0] == '@') {
        if (!file_exists(s.substr(1))) throw_bad_input("%s: file '%s' does not exist", what, s.substr(1).c_str());
        text = read_text_file(s.substr(1));
    }
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw_bad_input("%s is not valid JSON: %s", what, e.what());
    }
}

}  // namespace

std::string load_chat_template(const std::string& path) {
    if (path == "chatml" && !file_exists(path)) return kChatMLTemplate;  // llmforge's own (tools included)
    if (!file_exists(path)) throw_bad_input("chat template '%s' does not exist", path.c_str());
    if (gguf::has_magic(path)) {
        const gguf::File f = gguf::read(path);
        const std::string t = f.meta.get_string("tokenizer.chat_template", "");
        if (t.empty()) throw_bad_input("'%s' has no tokenizer.chat_template", path.c_str());
        return t;
    }
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
        const std::string t = chat_template_from_tokenizer_config(path);
        if (t.empty()) throw_bad_input("'%s' has no chat_template (a string, or a list with a \"default\" entry)", path.c_str());
        return t;
    }
    std::string t = read_text_file(path);
    // A chat template is Jinja text that prints the messages: refuse binary files and text without any Jinja in it
    // (a model file or a prompt passed by mistake), rather than rendering them verbatim.
    if (!utf8_valid(t) || t.find('\0') != std::string::npos)
        throw_bad_input("'%s' is not a chat template: it is not UTF-8 text (give a .jinja file, tokenizer_config.json or a GGUF model)", path.c_str());
    if (t.find("{{") == std::string::npos && t.find("{%") == std::string::npos)
        throw_bad_input("'%s' is not a chat template: it has no Jinja {{ … }} or {%% … %%} in it", path.c_str());
    return t;
}

void add_chat_template_encode(CLI::App* cmd);

void add_chat_template(CLI::App& app) {
    auto* cmd = app.add_subcommand("chat-template", "Render chat templates (Jinja) as Hugging Face transformers does");
    cmd->require_subcommand(1);
    auto* render = cmd->add_subcommand("render", "Render a conversation with a chat template and print the text");
    struct Opts {
        std::string tpl, messages, context = "{}";
        bool gen = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    render->add_option("--template", o->tpl, "a .jinja file, tokenizer_config.json, GGUF model, or chatml (llmforge's own)")->required();
    render->add_option("--messages", o->messages, "the conversation as JSON (OpenAI messages), or @FILE")->required();
    render->add_flag("--add-generation-prompt", o->gen, "end with the header of an assistant turn");
    render->add_option("--context", o->context, "more template variables as a JSON object (tools, bos_token, …), or @FILE");
    render->add_flag("--json", o->json, "print {\"text\": ...}");
    render->callback([o] {
        const jinja::Template tpl(load_chat_template(o->tpl));
        nlohmann::ordered_json ctx = json_arg(o->context, "--context");
        if (!ctx.is_object()) throw_bad_input("--context must be a JSON object");
        ctx["messages"] = json_arg(o->messages, "--messages");
        if (!ctx.contains("tools")) ctx["tools"] = nullptr;
        if (!ctx.contains("documents")) ctx["documents"] = nullptr;
        ctx["add_generation_prompt"] = o->gen;
        const std::string text = tpl.render(ctx);
        if (o->json) std::printf("%s\n", nlohmann::json({{"text", text}}).dump().c_str());
        else std::fwrite(text.data(), 1, text.size(), stdout);
    });
    add_chat_template_encode(cmd);
    auto* show = cmd->add_subcommand("show", "Print a chat template's Jinja source");
    auto tpl = std::make_shared<std::string>();
    show->add_option("--template", *tpl, "a .jinja file, tokenizer_config.json, GGUF model, or chatml (llmforge's own)")->required();
    show->callback([tpl] {
        const std::string t = load_chat_template(*tpl);
        std::fwrite(t.data(), 1, t.size(), stdout);
    });
}


void add_chat_template_encode(CLI::App* cmd) {
    auto* enc = cmd->add_subcommand("encode", "Token ids of a conversation and the assistant-only training mask (as sft sees it)");
    struct Opts {
        std::string model, tpl, messages;
    };
    auto o = std::make_shared<Opts>();
    enc->add_option("-m,--model", o->model, "model whose tokenizer (and chat template) to use")->required();
    enc->add_option("--template", o->tpl, "chat template to use instead of the model's (default: the model's, else ChatML)")->default_str("the model's, else ChatML");
    enc->add_option("--messages", o->messages, "the conversation as JSON (OpenAI messages), or @FILE")->required();
    enc->callback([o] {
        LoadOptions lo;
        lo.require_tokenizer = true;
        const Model m = load_model(o->model, lo);  // memory-mapped: the weights are not read
        if (!m.vocab) throw_bad_input("'%s' has no tokenizer", o->model.c_str());
        const ChatFormat fmt(*m.vocab, o->tpl.empty() ? std::string() : load_chat_template(o->tpl));
        const ChatTokens t = fmt.encode_for_training(json_arg(o->messages, "--messages"));
        nlohmann::json pieces = nlohmann::json::array();
        for (int32_t id : t.ids) pieces.push_back(m.vocab->token_to_piece(id, true));
        const nlohmann::json out = {{"ids", t.ids}, {"trained", t.trained}, {"n_trained", t.n_trained}, {"pieces", pieces}};
        std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    });
}

}  // namespace llmforge::cli
