// Helpers the subcommands share: sampling flags, seeds, sizes in words, loading a model with a log line.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <strings.h>
#include <random>
#include <sstream>

#include "cli/common.h"
#include "core/json_int.h"
#include "core/mmap_file.h"
#include "llmforge/error.h"

namespace llmforge::cli {

namespace {
std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof(b), "%g", v);
    return b;
}
CLI::Validator number_check(std::function<bool(double)> ok, const std::string& range) {
    return CLI::Validator(
        [ok, range](std::string& s) -> std::string {
            double v;
            if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
            return ok(v) ? std::string() : "must be " + range + ", not " + s;
        },
        "");
}
}  // namespace

CLI::Validator at_least(double lo, const std::string& note) {
    return number_check([lo](double v) { return v >= lo; }, "at least " + num(lo) + note);
}
CLI::Validator above(double lo, const std::string& note) {
    return number_check([lo](double v) { return v > lo; }, "greater than " + num(lo) + note);
}
CLI::Validator between(double lo, double hi, const std::string& note) {
    return number_check([lo, hi](double v) { return v >= lo && v <= hi; }, "in [" + num(lo) + ", " + num(hi) + "]" + note);
}

void add_grammar_options(CLI::App* cmd, GrammarOptions& o) {
    auto* g = cmd->add_option("--grammar", o.text, "a GBNF grammar (llama.cpp's format) the output must follow")->default_str("none");
    auto* f = cmd->add_option("--grammar-file", o.file, "read the GBNF grammar from a file")->default_str("none")->excludes(g);
    cmd->add_option("-j,--json-schema", o.schema, "a JSON Schema the output must follow: inline JSON, or @FILE")
        ->default_str("none")->excludes(g)->excludes(f);
}

std::string grammar_source(const GrammarOptions& o, std::string* name) {
    if (!o.schema.empty()) {
        const bool from_file = o.schema[0] == '@';
        const std::string label = from_file ? o.schema.substr(1) : std::string("--json-schema");
        if (name) *name = label;
        std::vector<std::string> dropped;
        std::string gbnf;
        try {
            JsonSchemaOptions so;
            so.strict = !o.lenient;
            gbnf = json_schema_to_gbnf(from_file ? read_text_file(o.schema.substr(1)) : o.schema, so, &dropped);
        } catch (const Error& e) {
            throw Error(e.kind(), label + ": " + e.what());
        }
        for (const auto& d : dropped) std::fprintf(stderr, "llmforge: warning: %s: %s\n", label.c_str(), d.c_str());
        return gbnf;
    }
    if (name) *name = o.file.empty() ? std::string("--grammar") : o.file;
    return o.file.empty() ? o.text : read_text_file(o.file);
}

std::shared_ptr<const CompiledGrammar> load_grammar(const GrammarOptions& o, const Vocab& vocab) {
    if (!o.given()) return nullptr;
    const auto t0 = std::chrono::steady_clock::now();
    std::string name;
    const std::string src = grammar_source(o, &name);
    std::shared_ptr<const Grammar> g;
    try {
        g = Grammar::parse(src);
    } catch (const Error& e) {
        throw Error(e.kind(), name + ": " + e.what());
    }
    auto cg = std::make_shared<CompiledGrammar>(g, GrammarVocab::from(vocab));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "llmforge: grammar: %zu rules, %zu character classes, ready in %.1f ms (token masks are computed as positions are first reached)\n",
             g->n_rules(), g->classes().size(), ms);
    return cg;
}

void add_sampling_options(CLI::App* cmd, SamplerParams& s, int64_t& seed) {
    cmd->add_option("--temp", s.temp, "temperature (0: greedy)")->check(at_least(0, " (0: greedy)"));
    cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)")->check(at_least(0, " (0: off)"));
    cmd->add_option("--top-p", s.top_p, "nucleus sampling mass (1: off)")->check(between(0, 1, " (1: off)"));
    cmd->add_option("--min-p", s.min_p, "drop tokens below min-p × the top probability (0: off)")->check(between(0, 1, " (0: off)"));
    cmd->add_option("--repeat-penalty", s.repeat_penalty, "divide the logits of recent tokens by this (1: off)")->check(above(0, " (1: off)"));
    cmd->add_option("--repeat-last-n", s.repeat_last_n, "how many recent tokens the penalty considers (-1: all)")->check(at_least(-1, " (-1: all)"));
    add_seed_option(cmd, seed, "random seed");
}

CLI::Option* add_seed_option(CLI::App* cmd, int64_t& seed, const std::string& what) {
    return cmd->add_option("-s,--seed", seed, what + " (-1: a random one)")->check(at_least(-1, " (-1: random)"));
}

CLI::Option* add_seed_option(CLI::App* cmd, uint64_t& seed, const std::string& what) {
    return cmd
        ->add_option_function<int64_t>(
            "-s,--seed",
            [&seed](const int64_t& v) {
                seed = seed_or_random(v);
                if (v < 0) std::fprintf(stderr, "llmforge: random seed %llu\n", static_cast<unsigned long long>(seed));
            },
            what + " (-1: a random one, logged)")
        ->check(at_least(-1, " (-1: random)"))
        ->default_str(std::to_string(seed));
}

CLI::Option* add_threads_option(CLI::App* cmd, int& threads, const std::string& what, int min) {
    return cmd->add_option("-t,--threads", threads, what)->check(between(min, 1024));
}

void warn_context(const Model& m, int64_t ctx) {
    if (ctx > m.config.n_ctx && m.config.n_ctx > 0)
        std::fprintf(stderr, "llmforge: warning: -c %lld is beyond the %lld positions the model was trained on; expect worse output past them\n",
                     static_cast<long long>(ctx), static_cast<long long>(m.config.n_ctx));
}

uint64_t seed_or_random(int64_t seed) { return seed < 0 ? std::random_device{}() : static_cast<uint64_t>(seed); }

std::string human_bytes(double b) {
    const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; ++i; }
    char buf[32];
    std::snprintf(buf, sizeof(buf), i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

void add_cache_type_options(CLI::App* cmd, CacheTypeOptions& o, const std::string& note) {
    cmd->add_option("--cache-type", o.both, "KV cache type of keys and values: f16" + note + ", f32, q8_0, q4_0, q4_1, q5_0, q5_1 or iq4_nl");
    cmd->add_option("--cache-type-k", o.k, "KV cache type of the keys (as llama.cpp's -ctk)")->default_str("--cache-type");
    cmd->add_option("--cache-type-v", o.v, "KV cache type of the values (as llama.cpp's -ctv)")->default_str("--cache-type");
}

SpecBatch read_spec_batch(const std::string& path) {
    SpecBatch b;
    try {
        b.spec = nlohmann::json::parse(read_text_file(path));
        for (const auto& row : b.spec.at("inputs")) {
            if (b.B > 0 && static_cast<int64_t>(row.size()) != b.T) throw_bad_input("'%s': the input rows differ in length", path.c_str());
            b.T = static_cast<int64_t>(row.size());
            for (const auto& id : row) b.inputs.push_back(static_cast<int32_t>(json_integer(id, 0, INT32_MAX, "'" + path + "': an input id")));
            ++b.B;
        }
        for (const auto& row : b.spec.at("targets"))
            for (const auto& id : row) b.targets.push_back(static_cast<int32_t>(json_integer(id, INT32_MIN, INT32_MAX, "'" + path + "': a target id")));
    } catch (const nlohmann::json::exception& e) {
        throw_bad_input("'%s': malformed JSON (%s)", path.c_str(), e.what());
    }
    if (b.targets.size() != b.inputs.size()) throw_bad_input("'%s': inputs and targets differ in shape", path.c_str());
    return b;
}

void add_draft_options(CLI::App* cmd, DraftOptions& o) {
    cmd->add_option("--draft", o.draft, "speculative decoding: a small model with the same tokenizer proposes tokens, this model verifies "
                                        "them in one pass (the output keeps this model's distribution; greedy: the same tokens)")->default_str("none");
    cmd->add_option("--draft-max", o.spec.draft_max, "with --draft: the most tokens proposed per verification pass")->capture_default_str()->check(between(1, 256));
    cmd->add_option("--draft-min-p", o.spec.draft_min_p, "with --draft: stop proposing at a token the draft gives less than this probability")
        ->capture_default_str()->check(between(0, 1));
    cmd->add_option("--numerics", o.numerics, "fast; batch-invariant (every position's logits bit for bit the same however the tokens are "
                                               "batched: greedy output with --draft then equals output without); ggml (llama.cpp's rounding)")
        ->default_str("fast; batch-invariant with --draft")->check(CLI::IsMember({"fast", "batch-invariant", "ggml"}));
}

Numerics parse_numerics(const std::string& n) {
    return n == "ggml" ? Numerics::Ggml : n == "batch-invariant" ? Numerics::BatchInvariant : Numerics::Fast;
}

Numerics numerics_of(const DraftOptions& o) {
    return parse_numerics(o.numerics.empty() ? (o.draft.empty() ? "fast" : "batch-invariant") : o.numerics);
}

KVCacheType parse_cache_types(const CacheTypeOptions& o) {
    auto one = [](const std::string& s, const char* opt) {
        DType t = DType::Unknown;
        for (DType c : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL})
            if (strcasecmp(s.c_str(), dtype_name(c)) == 0) t = c;
        if (t == DType::Unknown) throw_bad_input("%s must be f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1 or iq4_nl, not '%s'", opt, s.c_str());
        check_kv_type(t, opt);
        return t;
    };
    const DType both = one(o.both, "--cache-type");
    return KVCacheType(o.k.empty() ? both : one(o.k, "--cache-type-k"), o.v.empty() ? both : one(o.v, "--cache-type-v"));
}

std::string human_count(double n) {
    char buf[32];
    if (n >= 1e9) std::snprintf(buf, sizeof(buf), "%.2fB", n / 1e9);
    else if (n >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
    else if (n >= 1e3) std::snprintf(buf, sizeof(buf), "%.2fK", n / 1e3);
    else std::snprintf(buf, sizeof(buf), "%.0f", n);
    return buf;
}

Model load_for_cli(const std::string& path, const std::string& tokenizer, bool need_tokenizer, bool use_mmap, Repack repack) {
    LoadOptions o;
    o.use_mmap = use_mmap;
    o.repack = repack != Repack::None;
    o.float_panels = repack == Repack::All;
    o.tokenizer_path = tokenizer;
    o.require_tokenizer = need_tokenizer;
    if (!tokenizer.empty() && !file_exists(tokenizer)) throw_bad_input("tokenizer file '%s' does not exist", tokenizer.c_str());
    Model m = load_model(path, o);
    std::fprintf(stderr, "llmforge: loaded %s (%s, %s parameters, %s mapped, %s in memory)\n", path.c_str(), m.config.arch.c_str(),
                 human_count(static_cast<double>(m.config.n_params())).c_str(), human_bytes(static_cast<double>(m.mapped_bytes)).c_str(),
                 human_bytes(static_cast<double>(m.owned_bytes)).c_str());
    int packed = 0, interleaved = 0;
    for (const Tensor& t : m.tensors) packed += t.layout == Tensor::Layout::Panels, interleaved += t.layout == Tensor::Layout::Interleaved8;
    if (packed > 0) std::fprintf(stderr, "llmforge: %d f32/f16 matrices repacked into panels in memory for the CPU's matrix products\n", packed);
    if (interleaved > 0) std::fprintf(stderr, "llmforge: %d quantised matrices interleaved by eight rows in memory for the CPU's integer products\n", interleaved);
    return m;
}

namespace {
std::atomic<bool> g_stop{false};
extern "C" void stop_on_signal(int) { g_stop = true; }
}  // namespace

StopOnSignal::StopOnSignal() {
    g_stop = false;
    prev_int_ = std::signal(SIGINT, stop_on_signal);
    prev_term_ = std::signal(SIGTERM, stop_on_signal);
}

StopOnSignal::~StopOnSignal() {
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
}

const std::atomic<bool>* StopOnSignal::flag() const { return &g_stop; }

std::vector<int32_t> parse_token_list(const std::string& list, int64_t n_vocab, const char* cmd) {
    std::vector<int32_t> ids;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) {
        long long v;
        try {
            size_t used = 0;
            v = std::stoll(item, &used);
            if (used != item.size()) throw std::invalid_argument(item);
        } catch (const std::exception&) {
            throw_bad_input("%s: '%s' is not a token id", cmd, item.c_str());
        }
        if (v < 0 || v >= n_vocab) throw_bad_input("%s: token id %lld is outside the vocabulary (0 … %lld)", cmd, v, static_cast<long long>(n_vocab - 1));
        ids.push_back(static_cast<int32_t>(v));
    }
    if (ids.empty()) throw_bad_input("%s: no tokens", cmd);
    return ids;
}

}  // namespace llmforge::cli
