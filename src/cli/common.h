// Shared pieces of the subcommands: registration, thread count, model loading with a friendly log line.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "llmforge/generate.h"
#include "llmforge/grammar.h"
#include "llmforge/model.h"
#include "llmforge/sampler.h"
#include "llmforge/transformer.h"

namespace llmforge {
struct PretrainOptions;
}

namespace llmforge::cli {

// Registers every subcommand on app (the whole CLI), and runs it: parse, dispatch, one-line errors, exit status.
void build_app(CLI::App& app);
int run(int argc, char** argv);
// " (did you mean 'X'?)" for the candidate closest to word, or "" when none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

void add_info(CLI::App& app);
void add_init(CLI::App& app);
void add_convert(CLI::App& app);
void add_generate(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_tokenizer(CLI::App& app);
void add_train_steps(CLI::App& app);
void add_align_loss(CLI::App& app);
void add_distill_loss(CLI::App& app);
void add_distill_cache(CLI::App& app);
void add_reward(CLI::App& app);
void add_dpo(CLI::App& app);
void add_rlhf(CLI::App& app);
void add_grpo(CLI::App& app);
void add_plot(CLI::App& app);
void add_prepare(CLI::App& app);
void add_pretrain(CLI::App& app);
void add_logits(CLI::App& app);
void add_bench(CLI::App& app);
void add_chat_template(CLI::App& app);
void add_sft(CLI::App& app);
void add_distill(CLI::App& app);
void add_lora(CLI::App& app);
void add_chat(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_bleu(CLI::App& app);
void add_rouge(CLI::App& app);
void add_eval(CLI::App& app);
void add_serve(CLI::App& app);
void add_arena(CLI::App& app);
void add_quantize(CLI::App& app);
void add_imatrix(CLI::App& app);
void add_grammar(CLI::App& app);
void add_rag(CLI::App& app);
void add_embed(CLI::App& app);
void add_rerank(CLI::App& app);
void add_embed_train(CLI::App* embed);
// The options every training command shares (loop, optimiser, schedule, checkpoints): cmd_pretrain.cpp.
void add_training_options(CLI::App* cmd, const std::shared_ptr<PretrainOptions>& o);
// --grammar TEXT, --grammar-file FILE (llama.cpp's flags) and --json-schema SCHEMA|@FILE: a grammar for constrained
// decoding, GBNF or a JSON Schema compiled to GBNF.
struct GrammarOptions {
    std::string text, file, schema;
    bool lenient = false;  // drop schema keywords no grammar enforces (a warning each) instead of refusing the schema
    bool given() const { return !text.empty() || !file.empty() || !schema.empty(); }
};
void add_grammar_options(CLI::App* cmd, GrammarOptions& o);
// The GBNF the options give ("" when none), and a name for messages; a schema that does not compile is a bad-input
// Error naming the flag.
std::string grammar_source(const GrammarOptions& o, std::string* name = nullptr);
// The grammar compiled against the vocabulary (null when neither flag was given); logs its size and compile time.
std::shared_ptr<const CompiledGrammar> load_grammar(const GrammarOptions& o, const Vocab& vocab);
// A chat template from a .jinja file, tokenizer_config.json (chat_template) or GGUF (tokenizer.chat_template).
std::string load_chat_template(const std::string& path);

// How load_for_cli reorders the weights for the CPU's products (repack_for_cpu): not at all (every tensor row-major, as
// the file holds them: writing the model out), only into the layouts that keep ggml's digits (Q4_0 interleaved: for
// ggml arithmetic), or into all of them (f32 and f16 panels too: the fast and batch-invariant numerics).
enum class Repack { None, GgmlDigits, All };
inline Repack repack_for(Numerics n) { return n == Numerics::Ggml ? Repack::GgmlDigits : Repack::All; }
// Loads a model and logs what was loaded to stderr. use_mmap false reads the weights into memory.
Model load_for_cli(const std::string& path, const std::string& tokenizer, bool need_tokenizer, bool use_mmap = true, Repack repack = Repack::All);
// The KV cache's types: --cache-type (keys and values), and llama.cpp's --cache-type-k / -ctk and --cache-type-v / -ctv
// for each: f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl; anything else is bad usage.
// The fixed batch of a loss check (align-loss, distill-loss): the JSON spec file, its "inputs" and "targets" rows
// ([B][T] token ids; targets −1 where not trained on). Bad input for malformed JSON or rows of different shapes.
struct SpecBatch {
    nlohmann::json spec;
    std::vector<int32_t> inputs, targets;
    int64_t B = 0, T = 0;
};
SpecBatch read_spec_batch(const std::string& path);

// Speculative decoding and numerics (generate, chat): --draft, --draft-max, --draft-min-p, --numerics.
struct DraftOptions {
    std::string draft, numerics;
    SpeculativeParams spec;
};
void add_draft_options(CLI::App* cmd, DraftOptions& o);
// The numerics asked for; by default fast, batch-invariant with a draft (greedy output then equals output without).
Numerics numerics_of(const DraftOptions& o);
// --numerics' value (fast, batch-invariant or ggml; the option's check has refused anything else).
Numerics parse_numerics(const std::string& n);

struct CacheTypeOptions {
    std::string both = "f16", k, v;
};
void add_cache_type_options(CLI::App* cmd, CacheTypeOptions& o, const std::string& note = "");
KVCacheType parse_cache_types(const CacheTypeOptions& o);
std::string human_bytes(double b);
// "1,2,3" → token ids; a bad-input Error names a field that is not an id or one outside [0, n_vocab).
std::vector<int32_t> parse_token_list(const std::string& list, int64_t n_vocab, const char* cmd);
// CLI11 checks whose one-line message names the range: "--temp: must be at least 0 (0: greedy), not -1".
CLI::Validator at_least(double lo, const std::string& note = "");
CLI::Validator above(double lo, const std::string& note = "");
CLI::Validator between(double lo, double hi, const std::string& note = "");
// The shared spellings: -s,--seed (-1: random, checked) and -t,--threads (min … 1024; min 0 where 0 means all cores).
CLI::Option* add_seed_option(CLI::App* cmd, int64_t& seed, const std::string& what);
// The same for a library option that holds the seed itself: -1 draws a random one at once and logs it.
CLI::Option* add_seed_option(CLI::App* cmd, uint64_t& seed, const std::string& what);
CLI::Option* add_threads_option(CLI::App* cmd, int& threads, const std::string& what = "threads", int min = 1);
// The sampling flags of generate and chat: --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n -s/--seed.
void add_sampling_options(CLI::App* cmd, SamplerParams& s, int64_t& seed);
uint64_t seed_or_random(int64_t seed);  // seed < 0: a random one
// Loads each LoRA adapter file for model m and applies it beside the weights.
void apply_lora_adapters(Transformer& tf, const Model& m, const std::vector<std::string>& files, float scale);
std::string human_count(double n);
// Warns on stderr when ctx asks for more positions than the model was trained on (as llama.cpp does): quality degrades
// beyond them. ctx 0 means the model's own.
void warn_context(const Model& m, int64_t ctx);

// While it lives, SIGINT and SIGTERM set flag() instead of ending the process (training then saves a checkpoint and
// returns); the handlers before it are restored at the end.
class StopOnSignal {
public:
    StopOnSignal();
    ~StopOnSignal();
    StopOnSignal(const StopOnSignal&) = delete;
    StopOnSignal& operator=(const StopOnSignal&) = delete;
    const std::atomic<bool>* flag() const;

private:
    void (*prev_int_)(int);
    void (*prev_term_)(int);
};

}  // namespace llmforge::cli
