// llmforge grammar FILE [TEXT | -f TEXTFILE]: check a GBNF grammar, print it back, or check a text against it (as
// llama.cpp's llama-gbnf-validator does).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "llmforge/grammar.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

void add_grammar(CLI::App& app) {
    auto* cmd = app.add_subcommand("grammar", "Check a GBNF grammar (llama.cpp's format), print it, or check a text against it");
    struct Opts {
        std::string grammar, text, file, root = "root", regex, schema;
        bool print = false, gbnf = false, json = false, lines = false, lenient = false;
        int sample = 0;
        int64_t seed = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("grammar", o->grammar, "the grammar: a .gbnf file (or --regex)");
    cmd->add_option("--regex", o->regex, "a regular expression instead (JSON Schema's pattern subset), made a grammar: its strings whole")->default_str("none");
    cmd->add_option("-j,--json-schema", o->schema, "a JSON Schema instead (inline JSON, or @FILE), made a grammar as llama.cpp's json-schema-to-grammar does")->default_str("none");
    cmd->add_flag("--lenient", o->lenient, "drop the --json-schema keywords a grammar cannot enforce (uniqueItems, not, …), with a warning, "
                                           "instead of refusing the schema (llama.cpp drops them silently)");
    cmd->add_flag("--gbnf", o->gbnf, "print the GBNF that --json-schema or --regex makes");
    cmd->add_option("--sample", o->sample, "print this many random sentences of the grammar, one JSON string per line")->check(at_least(0));
    add_seed_option(cmd, o->seed, "seed of --sample");
    cmd->add_option("text", o->text, "a text to check against the grammar");
    cmd->add_option("-f,--file", o->file, "check the text of this file instead")->default_str("none");
    cmd->add_option("--root", o->root, "the rule to start from");
    cmd->add_flag("--lines", o->lines, "the -f file holds many texts, one JSON string per line (as --sample prints them): print one "
                                       "verdict per line, true or false");
    cmd->add_flag("--print", o->print, "print the grammar back as GBNF, groups and repetitions as the rules they become");
    cmd->add_flag("--json", o->json, "print the result as one JSON object");
    cmd->callback([o, cmd] {
        bool text_given = cmd->count("text") > 0;
        const int sources = !o->regex.empty() + !o->schema.empty();
        if (sources > 1) throw_bad_input("grammar: give one of a .gbnf file, --regex or --json-schema");
        if (sources && !o->grammar.empty()) {  // with --regex or --json-schema, the one positional is the text
            if (text_given) throw_bad_input("grammar: give a .gbnf file, --regex or --json-schema, not two of them");
            o->text = o->grammar;
            o->grammar.clear();
            text_given = true;
        }
        const bool has_text = text_given || !o->file.empty();
        if (text_given && !o->file.empty()) throw_bad_input("grammar: give the text as an argument or with -f FILE, not both");
        if (!sources && o->grammar.empty()) throw_bad_input("grammar: give a .gbnf file, --regex RE or --json-schema SCHEMA");
        std::string src, name;
        if (!o->schema.empty()) {
            GrammarOptions go;
            go.schema = o->schema;
            go.lenient = o->lenient;
            src = grammar_source(go, &name);
        } else if (!o->regex.empty()) {
            src = regex_to_gbnf(o->regex);
            name = "--regex";
        } else {
            src = read_text_file(o->grammar);
            name = o->grammar;
        }
        if (o->gbnf) {
            if (!sources) throw_bad_input("grammar: --gbnf prints what --json-schema or --regex makes (use --print for a .gbnf file)");
            std::fputs(src.c_str(), stdout);
        }
        std::shared_ptr<const Grammar> g;
        try {
            g = Grammar::parse(src, o->root);
        } catch (const Error& e) {
            throw Error(e.kind(), name + ": " + e.what());
        }
        if (o->print) std::fputs(g->to_gbnf().c_str(), stdout);
        const uint64_t seed = o->sample > 0 ? seed_or_random(o->seed) : 0;
        for (int i = 0; i < o->sample; ++i)
            std::printf("%s\n", nlohmann::json(g->sample(seed + static_cast<uint64_t>(i))).dump().c_str());
        if (!has_text) {
            if (o->gbnf || o->sample > 0) return;
            if (o->json) {
                nlohmann::json j = {{"grammar", name}, {"rules", g->n_rules()}, {"classes", g->classes().size()}, {"elements", g->elements().size()}};
                std::printf("%s\n", j.dump().c_str());
            } else if (!o->print) {
                std::printf("%s: valid grammar, %zu rules (with the ones groups and repetitions become), %zu character classes\n",
                            name.c_str(), g->n_rules(), g->classes().size());
            }
            return;
        }
        if (o->lines) {
            if (o->file.empty()) throw_bad_input("grammar: --lines reads the texts from -f FILE");
            const std::string all = read_text_file(o->file);
            size_t at = 0, line = 0;
            while (at < all.size()) {
                size_t end = all.find('\n', at);
                if (end == std::string::npos) end = all.size();
                const std::string_view row(all.data() + at, end - at);
                ++line;
                at = end + 1;
                if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
                nlohmann::json t = nlohmann::json::parse(row, nullptr, false);
                if (!t.is_string()) throw_bad_input("%s: line %zu is not a JSON string", o->file.c_str(), line);
                GrammarMatcher m(g);
                std::printf("%s\n", m.accept(t.get<std::string>()) && m.can_end() ? "true" : "false");
            }
            return;
        }
        const std::string text = !o->file.empty() ? read_text_file(o->file) : o->text;
        GrammarMatcher m(g);
        // feed one character at a time, to say where the text leaves the grammar
        size_t at = 0, line = 1, col = 1;
        std::string refused;
        while (at < text.size()) {
            size_t n = std::min(utf8_len(static_cast<unsigned char>(text[at])), text.size() - at);
            if (!m.accept(std::string_view(text).substr(at, n))) {
                refused = text.substr(at, n);
                break;
            }
            if (text[at] == '\n') { ++line; col = 1; } else { ++col; }
            at += n;
        }
        const bool complete = refused.empty() && m.can_end();
        std::string why;
        if (!refused.empty()) {
            nlohmann::json shown = refused;
            why = strprintf("at byte %zu (line %zu, column %zu): %s is not allowed here; expected %s", at, line, col,
                            shown.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(), m.expected().c_str());
        } else if (!complete) {
            why = strprintf("the text ends before the grammar is complete; expected %s", m.expected().c_str());
        }
        if (o->json) {
            nlohmann::json j = {{"grammar", name}, {"valid", complete}, {"bytes", text.size()}};
            if (!complete) {
                j["error"] = why;
                j["offset"] = at;
            }
            std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else if (complete) {
            std::printf("valid: the text matches the grammar\n");
        }
        std::fflush(stdout);
        if (!complete) throw_runtime("the text does not match the grammar: %s", why.c_str());
    });
}

}  // namespace llmforge::cli
