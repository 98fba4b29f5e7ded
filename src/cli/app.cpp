// The llmforge command line: every subcommand on one CLI11 app, and the one error style of the README — a parse error,
// like any other, is one line "llmforge: error: …" on stderr and exit status 2, with a did-you-mean suggestion for a
// misspelt subcommand or option.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <new>

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/log.h"

namespace llmforge::cli {

namespace {
// Every option shows its default in --help: the value its variable holds once every subcommand has set its own defaults
// (a command may change a shared option's default after adding it). Options whose variable starts empty say what
// happens instead, with default_str where they are added.
void capture_defaults(CLI::App* a) {
    for (CLI::Option* o : a->get_options([](CLI::Option*) { return true; }))
        if (o->get_expected_max() > 0 && o->get_default_str().empty()) o->capture_default_str();
    for (CLI::App* s : a->get_subcommands([](CLI::App*) { return true; })) capture_defaults(s);
}
}  // namespace

void build_app(CLI::App& app) {
    app.require_subcommand(1);
    app.set_version_flag("--version", "llmforge 0.1.0");
    add_info(app);
    add_init(app);
    add_convert(app);
    add_quantize(app);
    add_imatrix(app);
    add_grammar(app);
    add_generate(app);
    add_tokenize(app);
    add_tokenizer(app);
    add_train_steps(app);
    add_align_loss(app);
    add_distill_loss(app);
    add_distill_cache(app);
    add_reward(app);
    add_dpo(app);
    add_rlhf(app);
    add_grpo(app);
    add_plot(app);
    add_prepare(app);
    add_pretrain(app);
    add_logits(app);
    add_bench(app);
    add_chat_template(app);
    add_sft(app);
    add_distill(app);
    add_lora(app);
    add_chat(app);
    add_perplexity(app);
    add_bleu(app);
    add_rouge(app);
    add_eval(app);
    add_serve(app);
    add_arena(app);
    add_rag(app);
    add_embed(app);
    add_rerank(app);
    capture_defaults(&app);
}

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    if (word.size() <= 2) return "";  // -x: every other letter is as close
    std::string best;
    size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
    for (const auto& c : candidates) {
        size_t d = edit_distance(word, c);
        // a prefix of a longer name (--temper for --temperature) counts as close
        if (c.size() > word.size() && word.size() >= 4 && c.compare(0, word.size(), word) == 0) d = std::min<size_t>(d, 1);
        if (d < best_d) best_d = d, best = c;
    }
    return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

namespace {

std::string path_of(const CLI::App* a) {
    std::string p;
    for (; a && a->get_parent(); a = a->get_parent()) p = a->get_name() + (p.empty() ? "" : " " + p);
    return p;
}

std::vector<std::string> option_names(const CLI::App* a) {
    std::vector<std::string> out;
    for (const CLI::Option* o : a->get_options()) {
        for (const auto& l : o->get_lnames()) out.push_back("--" + l);
        for (const auto& s : o->get_snames()) out.push_back("-" + s);
    }
    return out;
}

bool takes_value(const CLI::App* a, const std::string& arg) {
    for (const CLI::Option* o : a->get_options())
        if (o->check_name(arg.substr(0, arg.find('='))) && o->get_expected_max() > 0) return arg.find('=') == std::string::npos;
    return false;
}

// Walks argv the way the parser does, to the subcommand the error belongs to, and explains the first unknown command
// or option there. Returns "" when nothing in argv is unknown.
std::string explain_unknown(const CLI::App& app, int argc, char** argv, const CLI::App** where) {
    const CLI::App* cur = &app;
    bool positional_seen = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--") break;
        if (arg.size() > 1 && arg[0] == '-' && !(arg.size() > 1 && (std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.'))) {
            const std::string name = arg.substr(0, arg.find('='));
            bool known = false;
            for (const CLI::App* a = cur; a && !known; a = a->get_parent()) known = a->get_option_no_throw(name) != nullptr || name == "--help" || name == "-h";
            if (!known && name.size() > 2 && name[1] != '-') {  // -abc: a run of short flags, or -n5
                known = true;
                for (size_t k = 1; k < name.size() && known; ++k) {
                    const CLI::Option* o = cur->get_option_no_throw(std::string("-") + name[k]);
                    if (!o) known = false;
                    else if (o->get_expected_max() > 0) break;  // the rest is its value
                }
            }
            if (!known) {
                *where = cur;
                const std::string p = path_of(cur);
                return (p.empty() ? "" : p + ": ") + "unknown option '" + name + "'" + did_you_mean(name, option_names(cur));
            }
            if (takes_value(cur, arg) && i + 1 < argc) ++i;
            continue;
        }
        if (!positional_seen) {
            const auto subs = cur->get_subcommands([](const CLI::App*) { return true; });
            std::vector<std::string> names;
            const CLI::App* next = nullptr;
            for (const CLI::App* s : subs) {
                names.push_back(s->get_name());
                if (s->check_name(arg)) next = s;
            }
            if (next) {
                cur = next;
                continue;
            }
            if (!subs.empty() && cur->get_require_subcommand_min() > 0) {
                *where = cur;
                const std::string p = path_of(cur);
                return "unknown command '" + (p.empty() ? arg : p + " " + arg) + "'" + did_you_mean(arg, names);
            }
            positional_seen = cur->get_subcommands([](const CLI::App*) { return true; }).empty();
        }
    }
    *where = cur;
    return "";
}

// CLI11's message, made one line, with the subcommand named.
std::string parse_message(const CLI::ParseError& e, const CLI::App& app, int argc, char** argv) {
    const CLI::App* where = &app;
    std::string unknown = explain_unknown(app, argc, argv, &where);
    const std::string p = path_of(where);
    std::string hint = " (see: llmforge" + (p.empty() ? "" : " " + p) + " --help)";
    if (!unknown.empty()) return unknown + hint;
    std::string msg = e.what();
    if (msg == "A subcommand is required") msg = p.empty() ? "no command given" : "no subcommand given";
    for (char& c : msg)
        if (c == '\n') c = ' ';
    if (dynamic_cast<const CLI::ExcludesError*>(&e)) {
        const size_t k = msg.find(" excludes ");
        if (k != std::string::npos) msg = msg.substr(0, k) + " and " + msg.substr(k + 10) + " cannot be used together";
    }
    return (p.empty() ? "" : p + ": ") + msg + hint;
}

}  // namespace

int run(int argc, char** argv) {
    set_log_sink(stderr_log_sink(), isatty(STDERR_FILENO) != 0);  // the library's messages and progress lines
    CLI::App app{"llmforge — a complete large-language-model system: train, align, evaluate, compress and serve Transformers"};
    build_app(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
        std::fflush(stdout);
        std::fprintf(stderr, "llmforge: error: %s\n", parse_message(e, app, argc, argv).c_str());
        return 2;
    } catch (const llmforge::Error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "llmforge: error: %s\n", e.what());
        return e.exit_code();
    } catch (const nlohmann::json::exception& e) {  // JSON of an unexpected shape that a reader did not name: still bad input
        std::fflush(stdout);
        std::fprintf(stderr, "llmforge: error: unexpected JSON in the input (%s)\n", e.what());
        return 2;
    } catch (const std::bad_alloc&) {
        std::fflush(stdout);
        std::fprintf(stderr, "llmforge: error: out of memory (an allocation failed; the step that failed did not say its size)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "llmforge: error: %s\n", e.what());
        return 1;
    }
    return 0;
}

}  // namespace llmforge::cli
