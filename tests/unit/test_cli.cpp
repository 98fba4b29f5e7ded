// The command line as a whole: one name per concept across every subcommand, every option's default in --help, and
// the one error style (one line "llmforge: error: …", exit 2, did-you-mean) for parse errors.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/model.h"
#include "test_util.h"

namespace {

struct Opt {
    std::string cmd;  // "generate", "tokenizer train", …
    std::vector<std::string> lnames, snames;
    std::string default_str;
    bool flag, required, positional;
};

void walk(const CLI::App* a, const std::string& path, std::vector<Opt>& out) {
    for (const CLI::Option* o : a->get_options()) {
        if (o->get_name() == "--help" || o->get_name() == "--version" || o->get_name() == "-h,--help") continue;
        if (std::find(o->get_lnames().begin(), o->get_lnames().end(), "help") != o->get_lnames().end()) continue;
        out.push_back({path, o->get_lnames(), o->get_snames(), o->get_default_str(), o->get_expected_max() == 0, o->get_required(),
                       o->get_positional()});
    }
    for (const CLI::App* s : a->get_subcommands([](const CLI::App*) { return true; }))
        walk(s, path.empty() ? s->get_name() : path + " " + s->get_name(), out);
}

std::vector<Opt> all_options() {
    CLI::App app;
    llmforge::cli::build_app(app);
    std::vector<Opt> out;
    walk(&app, "", out);
    return out;
}

// Subcommands that keep another tool's flags on purpose, because their users come from there (each says so in its
// --help): bench takes llama-bench's (-p n-prompt, -n n-gen, -r repetitions), bleu and rouge take sacreBLEU's (-m
// metrics, -b score-only, -i input, …).
bool borrowed(const std::string& cmd) { return cmd == "bench" || cmd == "bleu" || cmd == "rouge"; }

std::string names(const Opt& o) {
    std::string s;
    for (const auto& n : o.snames) s += (s.empty() ? "-" : ",-") + n;
    for (const auto& n : o.lnames) s += (s.empty() ? "--" : ",--") + n;
    return s;
}

}  // namespace

TEST(Cli, EveryOptionShowsItsDefault) {
    const auto opts = all_options();
    ASSERT_GT(opts.size(), 200u);
    std::vector<std::string> missing;
    for (const auto& o : opts)
        if (!o.flag && !o.required && !o.positional && o.default_str.empty()) missing.push_back(o.cmd + " " + names(o));
    std::string list;
    for (const auto& m : missing) list += "  " + m + "\n";
    EXPECT_TRUE(missing.empty()) << missing.size() << " options without a default in --help:\n" << list;
}

TEST(Cli, OneNamePerConcept) {
    const auto opts = all_options();
    std::map<std::string, std::set<std::string>> short_of_long, long_of_short;  // across subcommands
    for (const auto& o : opts) {
        if (borrowed(o.cmd)) continue;
        for (const auto& l : o.lnames) {
            std::string s = o.snames.empty() ? "" : o.snames[0];
            short_of_long[l].insert(s);
        }
        for (const auto& s : o.snames)
            for (const auto& l : o.lnames) long_of_short[s].insert(l);
    }
    for (const auto& [l, ss] : short_of_long)
        EXPECT_EQ(ss.size(), 1u) << "--" << l << " has different short names in different subcommands: " << testing::PrintToString(ss);
    for (const auto& [s, ls] : long_of_short)
        EXPECT_EQ(ls.size(), 1u) << "-" << s << " means different options in different subcommands: " << testing::PrintToString(ls);
    // the concepts the README names, spelt one way everywhere; other spellings of them must not appear
    const std::map<std::string, std::string> canonical = {
        {"threads", "t"}, {"seed", "s"}, {"ctx-size", "c"}, {"model", "m"}, {"output", "o"}, {"n-predict", "n"}, {"batch-size", "b"}};
    for (const auto& [l, s] : canonical) {
        if (!short_of_long.count(l)) continue;
        EXPECT_EQ(*short_of_long[l].begin(), s) << "--" << l << " should be -" << s << ",--" << l;
    }
    const std::set<std::string> banned = {"clip", "ctx", "context-size", "n-ctx", "thread", "n-threads", "temperature", "max-new-tokens",
                                          "scale", "batch", "random-seed"};
    for (const auto& o : opts)
        for (const auto& l : o.lnames)
            EXPECT_FALSE(banned.count(l) && !borrowed(o.cmd)) << o.cmd << " --" << l << ": another spelling of a concept with a canonical name";
}

namespace {
using test::run_cli;

// Runs the CLI ($LLMFORGE_BIN) expecting exit status 0; returns its stdout (and stderr, with and_stderr).
std::string cli_stdout(const std::string& args, bool and_stderr = false) {
    const std::string f = test::tmp_path("cli_out.txt");
    const int st = std::system((std::string(std::getenv("LLMFORGE_BIN")) + " " + args + " > " + f + (and_stderr ? " 2>&1" : " 2>/dev/null")).c_str());
    const std::string out = test::read_file(f);
    EXPECT_EQ(st, 0) << args << "\n" << out;
    return out;
}
void expect_error(const std::string& args, const std::string& needle) {
    std::string err;
    const int rc = run_cli(args, &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << args << ": " << err;
    EXPECT_EQ(err.rfind("llmforge: error: ", 0), 0u) << args << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << args << ": not one line: " << err;
    EXPECT_NE(err.find(needle), std::string::npos) << args << ": " << err;
}
}  // namespace

TEST(Cli, ParseErrorsAreOneLineWithSuggestions) {
    expect_error("genrate -m x.gguf -p hi", "unknown command 'genrate' (did you mean 'generate'?)");
    expect_error("", "no command given");
    expect_error("tokenizer trian --input a", "unknown command 'tokenizer trian' (did you mean 'train'?)");
    expect_error("generate -m x.gguf -p hi --tempp 0.5", "generate: unknown option '--tempp' (did you mean '--temp'?)");
    expect_error("generate -m x.gguf -p hi --top_k 3", "did you mean '--top-k'?");
    expect_error("generate -p hi", "generate: --model is required");
    expect_error("generate -m x.gguf --temp abc -p hi", "--temp");
    expect_error("generate -m x.gguf -p hi -f prompt.txt", "cannot be used together");
    expect_error("serve -m x.gguf --port 99999", "--port");
}

TEST(Cli, SamplingAndSizeFlagsAreRangeChecked) {
    // each of these was accepted before, several silently turning into greedy decoding
    const std::string g = "generate -m x.gguf -p hi ";
    expect_error(g + "--temp -1", "--temp: must be at least 0");
    expect_error(g + "--top-p -0.1", "--top-p: must be in [0, 1]");
    expect_error(g + "--top-p 1.5", "--top-p: must be in [0, 1]");
    expect_error(g + "--min-p 2", "--min-p: must be in [0, 1]");
    expect_error(g + "--top-k -3", "--top-k: must be at least 0");
    expect_error(g + "--repeat-penalty -1", "--repeat-penalty: must be greater than 0");
    expect_error(g + "-n -5", "--n-predict: must be at least -1 (-1: no limit), not -5");
    expect_error(g + "-c -1", "--ctx-size: must be at least 0");
    expect_error(g + "-b 0", "--batch-size: must be at least 1");
    expect_error(g + "-t 0", "--threads: must be in [1, 1024]");
    expect_error(g + "-s -2", "--seed: must be at least -1");
    expect_error("chat -m x.gguf --temp -0.5", "--temp");
    expect_error("perplexity -m x.gguf -f t.txt -c 1", "--ctx-size: must be at least 2");
    expect_error("bench -m x.gguf -r 0", "--repetitions");
    expect_error("bench -m x.gguf --numerics exact", "--numerics");
}

TEST(Cli, FileErrorsNameTheProblem) {
    const std::string model = test::golden_dir() + "/stories260K/stories260K.gguf";
    if (!llmforge::file_exists(model)) GTEST_SKIP() << "golden data absent: " << model;
    const std::string dir = test::tmp_path("a_directory");
    std::system(("mkdir -p " + dir).c_str());
    expect_error("generate -m " + model + " -f " + dir, "is a directory");
    expect_error("tokenize -m " + model + " -f " + dir, "is a directory");
    expect_error("generate -m " + dir + "/ -p hi", "no config.json");
    std::string bytes;
    for (int i = 0; i < 4096; ++i) bytes += static_cast<char>((i * 2654435761u) >> 13);
    const std::string rnd = test::tmp_path("random.bin"), txt = test::tmp_path("plain.txt");
    std::ofstream(rnd, std::ios::binary) << bytes;
    std::ofstream(txt) << "Once upon a time\n";
    expect_error("chat-template render --template " + rnd + " --messages '[]'", "is not a chat template: it is not UTF-8 text");
    expect_error("chat-template render --template " + txt + " --messages '[]'", "is not a chat template: it has no Jinja");
    expect_error("chat -m " + model + " --template " + rnd, "is not a chat template");
}

TEST(Cli, ContextBeyondTrainingWarnsAndTooLargeNamesTheBytes) {
    const std::string model = test::golden_dir() + "/stories260K/stories260K.gguf";
    if (!llmforge::file_exists(model)) GTEST_SKIP() << "golden data absent: " << model;
    std::string err;
    const int rc = run_cli("generate -m " + model + " -p Once -n 2 --temp 0 -c 100000", &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    ASSERT_EQ(rc, 0) << err;
    EXPECT_NE(err.find("warning: -c 100000 is beyond the 128 positions the model was trained on"), std::string::npos) << err;
    ASSERT_EQ(run_cli("generate -m " + model + " -p Once -n 2 --temp 0", &err), 0) << err;
    EXPECT_EQ(err.find("warning"), std::string::npos) << err;
    // more than any machine has: refused before allocating, with the sizes (not a bare "out of memory")
    ASSERT_EQ(run_cli("generate -m " + model + " -p Once -n 2 -c 2000000000", &err), 2) << err;
    EXPECT_NE(err.find("GiB for the KV cache"), std::string::npos) << err;
    EXPECT_NE(err.find("lower the context (-c)"), std::string::npos) << err;
}

// convert keeps the tokenizer through every format, so a round trip generates the same text; --tokenizer attaches a
// vocabulary to any model; vocabulary-only GGUF files tokenize; tokenize reads standard input without a text.
TEST(Cli, ConvertKeepsTheTokenizer) {
    const std::string g = test::golden_dir() + "/stories260K/";
    if (!llmforge::file_exists(g + "stories260K.gguf")) GTEST_SKIP() << "golden data absent";
    const char* bin = std::getenv("LLMFORGE_BIN");
    if (!bin) GTEST_SKIP() << "LLMFORGE_BIN not set";
    auto out_of = [](const std::string& args) { return cli_stdout(args); };
    const std::string gen = " -p 'Once upon a time' -n 24 --temp 0";
    const std::string want = out_of("generate -m " + g + "stories260K.gguf" + gen);
    ASSERT_GT(want.size(), 40u);
    const std::string dir = test::tmp_path("conv");
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    out_of("convert " + g + "stories260K.gguf " + dir + "/hf/");
    EXPECT_TRUE(llmforge::file_exists(dir + "/hf/tokenizer.json"));
    EXPECT_TRUE(llmforge::file_exists(dir + "/hf/tokenizer_config.json"));
    EXPECT_EQ(out_of("generate -m " + dir + "/hf" + gen), want);
    out_of("convert " + dir + "/hf " + dir + "/back.gguf");
    EXPECT_EQ(out_of("generate -m " + dir + "/back.gguf" + gen), want);
    out_of("convert " + dir + "/back.gguf " + dir + "/m.bin");
    EXPECT_TRUE(llmforge::file_exists(dir + "/m.tokenizer.bin"));
    EXPECT_EQ(out_of("generate -m " + dir + "/m.bin" + gen), want);
    // --tokenizer on a GGUF and a safetensors model (the llama2.c tokenizer of the same vocabulary)
    out_of("convert " + g + "stories260K.bin " + dir + "/notok.gguf");  // a .bin without its tokenizer.bin: none
    std::string err;
    EXPECT_EQ(run_cli("generate -m " + dir + "/notok.gguf -p x", &err), 2);
    EXPECT_NE(err.find("has no tokenizer"), std::string::npos) << err;
    EXPECT_EQ(out_of("generate -m " + dir + "/notok.gguf --tokenizer " + g + "tok512.bin" + gen), want);
    out_of("convert " + dir + "/notok.gguf " + dir + "/withtok.gguf --tokenizer " + g + "tok512.bin");
    EXPECT_EQ(out_of("generate -m " + dir + "/withtok.gguf" + gen), want);
    // a .safetensors file never replaces another model's config.json beside it
    std::ofstream(dir + "/config.json") << "{\"model_type\": \"other\"}\n";
    EXPECT_EQ(run_cli("convert " + g + "stories260K.gguf " + dir + "/x.safetensors", &err), 2);
    EXPECT_NE(err.find("belongs to another model"), std::string::npos) << err;
    EXPECT_FALSE(llmforge::file_exists(dir + "/x.safetensors"));
    EXPECT_EQ(run_cli("init --preset llama-tiny -o " + dir + "/model.txt", &err), 2);
    EXPECT_NE(err.find("cannot tell the format"), std::string::npos) << err;
    EXPECT_FALSE(llmforge::file_exists(dir + "/model.txt"));
    // vocabulary-only GGUF, and standard input
    const std::string vocab = test::golden_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
    EXPECT_EQ(out_of("tokenize -m " + vocab + " --ids 'Hello world'"), "[1, 15043, 3186]\n");
    const std::string piped = test::tmp_path("piped.txt");
    ASSERT_EQ(std::system(("printf 'Hello world' | " + std::string(bin) + " tokenize -m " + vocab + " --ids > " + piped + " 2>/dev/null").c_str()), 0);
    EXPECT_EQ(test::read_file(piped), "[1, 15043, 3186]\n");
    EXPECT_NE(out_of("tokenizer info " + vocab).find("SentencePiece-style"), std::string::npos);
}

// info describes any GGUF: every metadata key (not just general.*), every tensor with --all, and files it cannot run
// (quantised weights, other architectures, other tokenizers) with the reason instead of an error.
TEST(Cli, InfoDescribesAnyGguf) {
    const char* bin = std::getenv("LLMFORGE_BIN");
    if (!bin) GTEST_SKIP() << "LLMFORGE_BIN not set";
    auto out_of = [](const std::string& args) { return cli_stdout(args, true); };
    // a small LLaMA-shaped file whose matrices are q4_K and iq2_xxs blocks (random bytes: info reads, never computes)
    using namespace llmforge;
    gguf::Metadata meta;
    meta.set("general.architecture", gguf::Value::str("llama"));
    meta.set("general.name", gguf::Value::str("quantised"));
    for (auto [k, v] : std::vector<std::pair<const char*, uint32_t>>{{"llama.context_length", 64}, {"llama.embedding_length", 256},
                                                                      {"llama.feed_forward_length", 512}, {"llama.block_count", 1},
                                                                      {"llama.attention.head_count", 4}})
        meta.set(k, gguf::Value::u32(v));
    std::vector<std::vector<uint8_t>> store;
    std::vector<Tensor> ts;
    auto add = [&](const char* name, DType t, int64_t rows, int64_t cols) {
        Tensor x;
        x.name = name;
        x.dtype = t;
        x.shape = {rows, cols};
        store.emplace_back(x.nbytes(), 7);
        x.data = store.back().data();
        ts.push_back(x);
    };
    add("token_embd.weight", DType::Q4_K, 32, 256);
    add("blk.0.attn_q.weight", DType::IQ2_XXS, 256, 256);
    add("output_norm.weight", DType::F32, 1, 256);
    const std::string q = test::tmp_path("quantised.gguf");
    gguf::write(q, meta, ts);
    std::string out = out_of("info " + q);
    EXPECT_NE(out.find("runnable       not yet"), std::string::npos) << out;
    EXPECT_NE(out.find("q4_k"), std::string::npos) << out;
    EXPECT_NE(out.find("iq2_xxs"), std::string::npos) << out;
    EXPECT_NE(out.find("general.name"), std::string::npos) << out;
    EXPECT_NE(out.find("llama.feed_forward_length"), std::string::npos) << out;
    // a vocabulary without weights: described (the WordPiece tokenizer with its [CLS] and [SEP])
    const std::string g = test::golden_dir();
    if (!file_exists(g + "/vocab/ggml-vocab-bert-bge.gguf")) GTEST_SKIP() << "golden data absent";
    out = out_of("info " + g + "/vocab/ggml-vocab-bert-bge.gguf");
    EXPECT_NE(out.find("tokenizer      bert, 30522 tokens (bos 101, eos 102)"), std::string::npos) << out;
    EXPECT_NE(out.find("bert.attention.causal"), std::string::npos) << out;
    // --all: every metadata key and every tensor (stories260K has 19 keys and 48 tensors)
    out = out_of("info --all " + g + "/stories260K/stories260K.gguf");
    EXPECT_NE(out.find("metadata (19)"), std::string::npos) << out;
    EXPECT_NE(out.find("blk.4.ffn_up.weight"), std::string::npos) << out;
    EXPECT_NE(out.find("tokenizer.ggml.scores"), std::string::npos) << out;
    EXPECT_NE(out.find("vocabulary     512"), std::string::npos) << out;
    const std::string js = out_of("info --json " + q);
    EXPECT_NE(js.find("\"runnable\": false"), std::string::npos) << js;
}

// config.json fields and GGUF keys that change the mathematics are refused, naming them, rather than ignored.
TEST(Cli, ModelsWithUnsupportedMathematicsAreRefused) {
    using namespace llmforge;
    const std::string dir = test::tmp_path("hfcfg");
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    const Model m = init_random(preset("llama-tiny"), DType::F32, 1);
    save_model(m, dir + "/");
    const std::string cfg = test::read_file(dir + "/config.json");
    ASSERT_NO_THROW(load_model(dir));
    auto with = [&](const std::string& extra) {
        std::ofstream(dir + "/config.json") << cfg.substr(0, cfg.rfind('}')) << ", " << extra << "}\n";
        try {
            (void)load_model(dir);
            return std::string("loaded");
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::BadInput);
            return std::string(e.what());
        }
    };
    EXPECT_NE(with(R"("rope_scaling": {"rope_type": "longrope", "factor": 8.0})").find("\"rope_scaling\""), std::string::npos);
    EXPECT_NE(with(R"("sliding_window": 16)").find("\"sliding_window\""), std::string::npos);
    EXPECT_EQ(with(R"("sliding_window": 4096)"), "loaded");  // a window longer than the context changes nothing
    EXPECT_EQ(with(R"("sliding_window": 16, "use_sliding_window": false)"), "loaded");
    EXPECT_NE(with(R"("attention_bias": true)").find("\"attention_bias\""), std::string::npos);
    EXPECT_NE(with(R"("hidden_act": "gelu")").find("\"hidden_act\""), std::string::npos);
    EXPECT_EQ(with(R"("rope_scaling": null, "attention_bias": false)"), "loaded");
    // GGUF: any key of the architecture's namespace we do not read is refused unless neutral
    const std::string g = test::tmp_path("scaled.gguf");
    save_model(m, g);
    gguf::File f = gguf::read(g);
    gguf::Metadata meta = f.meta;
    meta.set("llama.rope.scaling.type", gguf::Value::str("none"));
    const std::string g2 = test::tmp_path("scaled2.gguf");
    gguf::write(g2, meta, f.tensors);
    ASSERT_NO_THROW(load_model(g2));
    meta.set("llama.rope.scaling.type", gguf::Value::str("yarn"));  // implemented: YaRN, as llama.cpp reads it
    meta.set("llama.rope.scaling.factor", gguf::Value::f32(4.0f));
    gguf::write(g2, meta, f.tensors);
    const ModelConfig yarn = load_model(g2).config;
    EXPECT_EQ(yarn.rope_scaling, RopeScaling::Yarn);
    EXPECT_EQ(yarn.rope_scale, 4.0f);
    EXPECT_EQ(yarn.rope_orig_ctx, yarn.n_ctx);  // no original_context_length: the model's
    meta.set("llama.rope.scaling.type", gguf::Value::str("longrope"));
    gguf::write(g2, meta, f.tensors);
    try {
        (void)load_model(g2);
        ADD_FAILURE() << "a longrope-scaled GGUF loaded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("llama.rope.scaling.type"), std::string::npos) << e.what();
    }
    meta.erase("llama.rope.scaling.factor");
    meta.set("llama.rope.scaling.type", gguf::Value::str("none"));
    meta.set("llama.attention.sliding_window", gguf::Value::u32(8));  // implemented: Mistral's window
    gguf::write(g2, meta, f.tensors);
    EXPECT_EQ(load_model(g2).config.sliding_window, 8);
    meta.set("llama.attention.logit_softcapping", gguf::Value::f32(30.0f));
    gguf::write(g2, meta, f.tensors);
    EXPECT_THROW(load_model(g2), Error);
}

// On a terminal, perplexity's running values (stdout) and its progress bar (stderr, redrawn with \r) must not share a
// line: run it under a pseudo-terminal (util-linux's script) and look at what the terminal got.
TEST(Cli, PerplexityValuesAndProgressBarKeepTheirOwnLines) {
    const char* bin = std::getenv("LLMFORGE_BIN");
    const std::string g = test::golden_dir() + "/stories260K/";
    if (!bin || !llmforge::file_exists(g + "stories260K.gguf")) GTEST_SKIP() << "LLMFORGE_BIN or golden data absent";
    if (std::system("command -v script > /dev/null") != 0) GTEST_SKIP() << "util-linux's script is not installed";
    const std::string out = test::tmp_path("pty.txt");
    const std::string cmd = "script -qc \"" + std::string(bin) + " perplexity -m " + g + "stories260K.gguf -f " + g + "ppl_story.txt -c 128\" /dev/null > " + out;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    const std::string tty = test::read_file(out);
    ASSERT_NE(tty.find("[14]3.2587,"), std::string::npos) << tty;  // llama-perplexity's values, all there
    size_t lines = 0;
    for (size_t p = 0; p < tty.size();) {
        size_t e = tty.find('\n', p);
        if (e == std::string::npos) e = tty.size();
        const std::string line = tty.substr(p, e - p);
        EXPECT_FALSE(line.find("perplexity [") != std::string::npos && line.find("[1]") != std::string::npos) << "shared line: " << line;
        p = e + 1;
        ++lines;
    }
    EXPECT_GT(lines, 3u);
}

// Small defects: bench's table keeps its columns aligned; a GPT-2 preset shows no RoPE fields; chat says once that it
// falls back to ChatML for a model without a chat template.
TEST(Cli, SmallDefects) {
    const char* bin = std::getenv("LLMFORGE_BIN");
    const std::string g = test::golden_dir() + "/stories260K/stories260K.gguf";
    if (!bin || !llmforge::file_exists(g)) GTEST_SKIP() << "LLMFORGE_BIN or golden data absent";
    auto out_of = [](const std::string& args) { return cli_stdout(args); };
    // every line of the table as wide as the header, counting characters (the "±" is one)
    const std::string table = out_of("bench -m " + g + " -p 8 -n 8 -r 1 2>/dev/null");
    std::vector<size_t> widths;
    for (size_t p = 0; p < table.size();) {
        const size_t e = table.find('\n', p);
        size_t w = 0;
        for (size_t i = p; i < e; ++i) w += (static_cast<unsigned char>(table[i]) & 0xC0) != 0x80;
        widths.push_back(w);
        p = e + 1;
    }
    ASSERT_EQ(widths.size(), 4u) << table;
    for (size_t w : widths) EXPECT_EQ(w, widths[0]) << table;
    // --numerics: the mode a speculative verification pass runs in, named in the JSON
    const nlohmann::json bi = nlohmann::json::parse(out_of("bench -m " + g + " -p 3 -n 0 -r 1 --numerics batch-invariant --json 2>/dev/null"));
    EXPECT_EQ(bi["numerics"], "batch-invariant");
    ASSERT_EQ(bi["results"].size(), 1u);
    EXPECT_EQ(bi["results"][0]["test"], "pp3");
    EXPECT_GT(bi["results"][0]["tokens_per_s"].get<double>(), 0.0);
    const std::string gpt3 = out_of("info --preset gpt3-175b --json");
    EXPECT_EQ(gpt3.find("rope"), std::string::npos) << gpt3;
    EXPECT_NE(gpt3.find("\"positions\": \"learned\""), std::string::npos) << gpt3;
    EXPECT_NE(out_of("info --preset llama2-7b --json").find("rope_theta"), std::string::npos);
    const std::string logf = test::tmp_path("chat_log.txt");
    EXPECT_EQ(std::system((std::string(bin) + " chat -m " + g + " -n 4 --temp 0 < /dev/null > /dev/null 2> " + logf).c_str()), 0);
    const std::string log = test::read_file(logf);
    EXPECT_NE(log.find("has no chat template; using ChatML"), std::string::npos) << log;
}

// Quantised files run everywhere a model is taken: quantize (Q8_0 and the Q4_K_M mix) → perplexity close to the f32
// model's (and KL divergence to it small), generate, and convert back to f16 (dequantised: the same perplexity as the
// quantised file to rounding).
TEST(Cli, QuantizedModelsRun) {
    if (!std::getenv("LLMFORGE_BIN")) GTEST_SKIP() << "LLMFORGE_BIN not set";
    using namespace llmforge;
    const std::string f32 = test::tmp_path("qrun.gguf"), text = test::tmp_path("qrun.txt");
    save_model(init_random(preset("gpt2-mini"), DType::F32, 3), f32);
    std::string t;
    for (int i = 0; i < 60; ++i) t += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
    std::ofstream(text) << t;
    auto ppl = [&](const std::string& m, const std::string& extra = "") {
        const std::string js = cli_stdout("perplexity -m " + m + " -f " + text + " -c 128 --json " + extra);
        return nlohmann::json::parse(js);
    };
    const double base = ppl(f32)["ppl"];
    for (const char* type : {"Q8_0", "Q4_K_M"}) {
        const std::string q = test::tmp_path(std::string("qrun-") + type + ".gguf");
        const auto report = nlohmann::json::parse(cli_stdout(std::string("quantize --json ") + f32 + " " + q + " " + type));
        EXPECT_LT(report["bpw_out"].get<double>(), std::string(type) == "Q8_0" ? 10.0 : 7.0) << report.dump();  // (with the f32 norms and positions)
        const auto r = ppl(q, "--kl-base " + f32);
        EXPECT_NEAR(r["ppl"].get<double>(), base, base * (std::string(type) == "Q8_0" ? 0.002 : 0.02)) << type;
        EXPECT_LT(r["kl_divergence"]["mean"].get<double>(), std::string(type) == "Q8_0" ? 1e-4 : 5e-3) << type << r.dump();
        EXPECT_FALSE(cli_stdout("generate -m " + q + " -p \"the quick\" -n 8 --temp 0").empty()) << type;
        EXPECT_NE(cli_stdout("info " + q).find("as stored weights"), std::string::npos) << type;  // memory as the file runs
        const std::string back = test::tmp_path(std::string("qrun-") + type + "-f16.gguf");
        cli_stdout("convert " + q + " " + back + " --dtype f16");
        EXPECT_NEAR(ppl(back)["ppl"].get<double>(), r["ppl"].get<double>(), r["ppl"].get<double>() * 2e-3) << type;
    }
}
