// Bad input: each case gives a one-line error naming the problem and exit status 2, never a crash.
// Checked twice: through the library (an llmforge::Error of kind BadInput) and through the CLI binary.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include "core/json_int.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/model.h"
#include "llmforge/quantize.h"
#include "llmforge/tokenizer.h"
#include "test_util.h"

using namespace llmforge;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Minimal GGUF writer for hand-made (possibly broken) files.
struct RawGGUF {
    std::string b;
    template <class T> void put(T v) { b.append(reinterpret_cast<const char*>(&v), sizeof(T)); }
    void str(const std::string& s) { put<uint64_t>(s.size()); b += s; }
    // magic, version 3, tensor and metadata counts
    RawGGUF(uint64_t n_tensors, uint64_t n_kv) : b("GGUF") {
        put<uint32_t>(3);
        put<uint64_t>(n_tensors);
        put<uint64_t>(n_kv);
    }
    // one tensor-info entry: name, dims (innermost first), GGML type id, data offset
    void tensor_info(const std::string& name, std::initializer_list<uint64_t> dims, uint32_t type, uint64_t offset) {
        str(name);
        put<uint32_t>(static_cast<uint32_t>(dims.size()));
        for (uint64_t d : dims) put<uint64_t>(d);
        put<uint32_t>(type);
        put<uint64_t>(offset);
    }
};

using test::run_cli;

// The library throws a bad-input Error mentioning `needle`; the CLI exits 2 with one line mentioning it.
void expect_bad(const std::string& model, const std::string& needle, const std::string& extra_args = "-p hello") {
    try {
        LoadOptions o;
        o.require_tokenizer = true;
        (void)load_model(model, o);
        ADD_FAILURE() << "loading " << model << " did not fail";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    std::string err;
    const int rc = run_cli("generate -m " + model + " " + extra_args, &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find(needle), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "not one line: " << err;
}

// Writes the tensors of m as a GGUF with its config and vocabulary in the metadata, after `tweak` edits the metadata;
// unlike save_model this writes whatever m holds, broken or not.
std::string write_raw(const Model& m, const std::string& name, const std::function<void(gguf::Metadata&)>& tweak = nullptr) {
    gguf::Metadata meta = m.meta;
    config_to_gguf(m.config, meta);
    m.vocab->to_gguf(meta);
    if (tweak) tweak(meta);
    const std::string p = test::tmp_path(name);
    gguf::write(p, meta, m.tensors);
    return p;
}

std::string tiny_model_path() {
    static std::string p;
    if (p.empty()) {
        p = test::tmp_path("tiny.gguf");
        save_model(init_random(preset("llama-tiny"), DType::F32, 1), p);
    }
    return p;
}

}  // namespace

TEST(BadInput, MissingFile) { expect_bad(test::tmp_path("does-not-exist.gguf"), "does not exist"); }

TEST(BadInput, WrongMagic) {
    const std::string p = test::tmp_path("magic.gguf");
    write_bytes(p, std::string("GGML") + std::string(100, '\0'));
    expect_bad(p, "wrong magic");
}

TEST(BadInput, TruncatedGGUF) {
    const std::string full = test::read_file(tiny_model_path());
    const std::string p = test::tmp_path("trunc.gguf");
    for (size_t cut : {size_t(6), size_t(30), full.size() / 2, full.size() - 1}) {
        write_bytes(p, full.substr(0, cut));
        expect_bad(p, "truncated");
    }
}

TEST(BadInput, TensorDataPastEndOfFile) {
    RawGGUF g(1, 1);
    g.str("general.architecture");
    g.put<uint32_t>(8);
    g.str("llama");
    g.tensor_info("token_embd.weight", {64, 512}, 0 /* f32 */, 1u << 20 /* offset far past the end */);
    g.b.append((32 - g.b.size() % 32) % 32, '\0');
    g.b.append(1024, '\0');
    const std::string p = test::tmp_path("pastend.gguf");
    write_bytes(p, g.b);
    expect_bad(p, "runs past the end");
}

TEST(BadInput, AbsurdDimensions) {
    RawGGUF g(1, 0);
    g.tensor_info("token_embd.weight", {uint64_t(1) << 62, uint64_t(1) << 62}, 0, 0);
    const std::string p = test::tmp_path("absurd.gguf");
    write_bytes(p, g.b);
    expect_bad(p, "absurd dimension");
    // and absurd counts in the header
    write_bytes(p, RawGGUF(uint64_t(1) << 60, uint64_t(1) << 60).b);
    expect_bad(p, "cannot fit");  // counts no file could hold
}

TEST(BadInput, MissingTensor) {
    Model m = init_random(preset("llama-tiny"), DType::F32, 1);
    m.tensors.erase(std::remove_if(m.tensors.begin(), m.tensors.end(), [](const Tensor& t) { return t.name == "blk.2.ffn_up.weight"; }),
                    m.tensors.end());
    expect_bad(write_raw(m, "missing.gguf"), "missing tensor 'blk.2.ffn_up.weight'");
}

TEST(BadInput, UnknownArchitecture) {
    Model m = init_random(preset("llama-tiny"), DType::F32, 1);
    const std::string p = write_raw(m, "arch.gguf", [](gguf::Metadata& meta) { meta.set("general.architecture", gguf::Value::str("mamba")); });
    expect_bad(p, "unknown architecture 'mamba'");
}

TEST(BadInput, UnsupportedDtype) {
    Model m = init_random(preset("llama-tiny"), DType::F32, 1);
    // Re-label one matrix as Q8_1 (a block type of ggml's activations, not of weights) with the right number of bytes
    // (32 values per 36-byte block).
    std::vector<uint8_t> q(static_cast<size_t>(64 * 64 / 32 * 36), 0);
    for (auto& t : m.tensors)
        if (t.name == "blk.0.attn_q.weight") { t.dtype = DType::Q8_1; t.data = q.data(); }
    const std::string p = write_raw(m, "q4.gguf");
    expect_bad(p, "type q8_1, which is not supported");
    // A GGML type id llmforge does not know at all
    RawGGUF g(1, 0);
    g.tensor_info("token_embd.weight", {256}, 99, 0);
    write_bytes(p, g.b);
    expect_bad(p, "does not support yet");
}

// Quantised files: a truncated quantised tensor, and rows that do not split into the type's blocks.
TEST(BadInput, TruncatedQuantizedTensor) {
    Model m = init_random(preset("gpt2-tiny"), DType::F32, 1);  // every row a multiple of 32
    const std::string f32 = test::tmp_path("qsrc.gguf"), q = test::tmp_path("q8.gguf");
    save_model(m, f32);
    QuantizeOptions o;
    o.type = "Q8_0";
    o.progress = false;
    (void)quantize_model(f32, q, o);
    EXPECT_NO_THROW((void)load_model(q));
    const std::string bytes = test::read_file(q);
    write_bytes(q, bytes.substr(0, bytes.size() - 100));  // the last tensor's last blocks cut off
    expect_bad(q, "runs past the end of the file");
}

TEST(BadInput, QuantizedRowsNotWholeBlocks) {
    Model m = init_random(preset("llama-tiny"), DType::F32, 1);
    // blk.0.attn_q.weight relabelled Q4_K: rows of 64 values cannot hold Q4_K's blocks of 256
    std::vector<uint8_t> q(static_cast<size_t>(64 * 144), 0);
    for (auto& t : m.tensors)
        if (t.name == "blk.0.attn_q.weight") { t.dtype = DType::Q4_K; t.data = q.data(); }
    expect_bad(write_raw(m, "q4k64.gguf"), "has 64 columns, not a multiple of the q4_k block size");
}

// llmforge quantize: one line and exit 2 for rows that do not split into the type asked, a type it does not have, an
// importance matrix made for another model, and Q2_K_S without one.
TEST(BadInput, QuantizeRefusesWithOneLine) {
    const std::string src = test::tmp_path("qin.gguf"), out = test::tmp_path("qout.gguf"), im = test::tmp_path("other.imatrix");
    save_model(init_random(preset("llama-tiny"), DType::F32, 1), src);  // ffn_down has rows of 172 values
    const std::string src256 = test::tmp_path("qin256.gguf");
    save_model(init_random(preset("gpt2-mini"), DType::F32, 1), src256);  // every row a multiple of 256
    ImportanceMatrix other;
    other.entries["blk.0.attn_q.weight"] = {std::vector<float>(999, 1.0f), 1};
    other.chunks = 1;
    write_imatrix(other, im);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"quantize " + src + " " + out + " Q8_0", "rows of 172 values do not split into q8_0's blocks of 32"},
        {"quantize --pure " + src + " " + out + " Q4_K", "not a multiple of q4_k's block of 256"},
        {"quantize " + src + " " + out + " IQ2_XXS", "unknown type 'IQ2_XXS'"},
        {"quantize --imatrix " + im + " " + src + " " + out + " Q4_0", "has 999 values for 'blk.0.attn_q.weight', which has 64 columns: it was made for another model"},
        {"quantize " + src256 + " " + out + " Q2_K_S", "Q2_K_S needs an importance matrix"},
        {"quantize --pure " + src + " " + out + " IQ4_XS", "not a multiple of iq4_xs's block of 256"},
        {"quantize --imatrix " + src + " " + src + " " + out + " Q4_0", "importance matrix"},
    };
    for (const auto& [args, needle] : cases) {
        std::string err;
        const int rc = run_cli(args, &err);
        if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
        EXPECT_EQ(rc, 2) << args << ": " << err;
        EXPECT_NE(err.find(needle), std::string::npos) << args << ": " << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "not one line: " << err;
        EXPECT_FALSE(file_exists(out)) << args;
    }
}

TEST(BadInput, PromptLongerThanContext) {
    const std::string p = tiny_model_path();
    std::string err;
    const int rc = run_cli("generate -m " + p + " -c 16 -n 4 -p 'this prompt is certainly longer than sixteen tokens of context'", &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2);
    EXPECT_NE(err.find("longer than the context"), std::string::npos) << err;
}

TEST(BadInput, MissingTokenizer) {
    REQUIRE_GOLDEN();
    // a llama2.c model alone in a directory: no tokenizer.bin beside it
    const std::string dir = test::tmp_path("l2c");
    std::system(("mkdir -p " + dir).c_str());
    const std::string p = dir + "/model.bin";
    write_bytes(p, test::read_file(test::golden_dir() + "/stories260K/stories260K.bin"));
    expect_bad(p, "has no tokenizer");
}

TEST(BadInput, TruncatedLlama2c) {
    REQUIRE_GOLDEN();
    const std::string full = test::read_file(test::golden_dir() + "/stories260K/stories260K.bin");
    const std::string p = test::tmp_path("trunc.bin");
    write_bytes(p, full.substr(0, full.size() - 100));
    expect_bad(p, "truncated", "--tokenizer " + test::golden_dir() + "/stories260K/tok512.bin -p hello");
}

TEST(BadInput, CorruptSafetensors) {
    const std::string dir = test::tmp_path("st");
    std::system(("mkdir -p " + dir).c_str());
    save_model(init_random(preset("llama-tiny"), DType::F32, 1), dir);
    std::string bytes = test::read_file(dir + "/model.safetensors");
    bytes[8] = '!';  // break the JSON header (its opening brace)
    write_bytes(dir + "/model.safetensors", bytes);
    expect_bad(dir, "not valid JSON");
    write_bytes(dir + "/config.json", "{\"model_type\": ");
    expect_bad(dir, "config.json' is not valid JSON");
}

// A data offset that is a float beyond any integer type (nlohmann's get<uint64_t> would convert it: undefined behaviour)
// is refused by name, as is one that is not a number.
TEST(BadInput, SafetensorsOffsetNotAnInteger) {
    const std::string dir = test::tmp_path("st_offsets");
    std::system(("mkdir -p " + dir).c_str());
    save_model(init_random(preset("llama-tiny"), DType::F32, 1), dir);
    const std::string good = test::read_file(dir + "/model.safetensors");
    uint64_t n = 0;
    std::memcpy(&n, good.data(), 8);
    for (const nlohmann::json& bad : {nlohmann::json(1e30), nlohmann::json("64"), nlohmann::json(-8)}) {
        nlohmann::json h = nlohmann::json::parse(good.substr(8, n));
        std::string name;
        for (auto it = h.begin(); it != h.end(); ++it)
            if (it.key() != "__metadata__") { name = it.key(); break; }
        h[name]["data_offsets"][1] = bad;
        const std::string head = h.dump();
        std::string bytes(8, '\0');
        const uint64_t len = head.size();
        std::memcpy(bytes.data(), &len, 8);
        write_bytes(dir + "/model.safetensors", bytes + head + good.substr(8 + n));
        expect_bad(dir, "tensor '" + name + "' data offset " + bad.dump() + " is not an integer in [0, ");
    }
}

// The checked integer reader itself: only a JSON integer inside the range passes.
TEST(BadInput, JsonIntegerChecksTypeAndRange) {
    using nlohmann::json;
    EXPECT_EQ(json_integer(json(7), 0, 10, "x"), 7);
    EXPECT_EQ(json_integer(json(-3), -5, 10, "x"), -3);
    EXPECT_EQ(json_integer(json(uint64_t{1} << 40), 0, INT64_MAX, "x"), int64_t{1} << 40);
    for (const json& v : {json(6.5e34), json(5.0), json("5"), json(nullptr), json(true), json(UINT64_MAX), json(11), json(-6)}) {
        try {
            (void)json_integer(v, -5, 10, "'f': an id");
            ADD_FAILURE() << v.dump() << " was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::BadInput);
            EXPECT_EQ(std::string(e.what()), "'f': an id " + v.dump() + " is not an integer in [-5, 10]");
        }
    }
}

// Batch files of the checking commands (train-steps, align-loss, distill-loss): an id that is not an int32 is refused.
TEST(BadInput, BatchIdNotAnInteger) {
    const std::string batch = test::tmp_path("float_batch.json");
    for (const char* b : {"1e+30", "2.5", "4294967296"}) {
        const std::string bad = b;
        write_bytes(batch, "{\"inputs\": [[1, " + bad + ", 3]], \"targets\": [[2, 3, 4]]}");
        std::string err;
        const int rc = run_cli("train-steps -m " + tiny_model_path() + " --batch-file " + batch + " --steps 0", &err);
        if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
        EXPECT_EQ(rc, 2) << err;
        EXPECT_NE(err.find("an input id " + bad + " is not an integer in [0, 2147483647]"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "not one line: " << err;
    }
}

// ---- tokenizer files -------------------------------------------------------------------------------------------------
namespace {

// Loading the tokenizer file (by `load`: BpeTokenizer's by default) throws a bad-input Error mentioning `needle`;
// `llmforge tokenize` exits 2 with one line.
void expect_bad_tokenizer(const std::string& name, const std::string& content, const std::string& needle,
                          const std::function<void(const std::string&)>& load = [](const std::string& p) { (void)BpeTokenizer::load(p); }) {
    const std::string p = test::tmp_path(name);
    write_bytes(p, content);
    try {
        load(p);
        ADD_FAILURE() << "loading " << name << " did not fail";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    std::string err;
    const int rc = run_cli("tokenize --tokenizer " + p + " hello", &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find(needle), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "not one line: " << err;
}

// A small valid tokenizer.json: bytes a, b, c, space; merges "a b", "ab c"; with `tweak` applied to its text.
std::string small_tokenizer_json(const std::string& model_extra = "", const std::string& pre = "") {
    std::string vocab = R"("a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5)";
    return R"({"version": "1.0", "added_tokens": [{"id": 6, "content": "<|end|>", "special": true}], "normalizer": null,)"
           R"( "pre_tokenizer": )" + (pre.empty() ? std::string(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})") : pre) +
           R"(, "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {)" + vocab + R"(}, "merges": ["a b", "ab c"])" +
           model_extra + "}}";
}

}  // namespace

TEST(BadInput, TokenizerJsonValidBaseline) {
    const std::string p = test::tmp_path("good_tokenizer.json");
    write_bytes(p, small_tokenizer_json());
    const BpeTokenizer t = BpeTokenizer::load(p);
    EXPECT_EQ(t.encode("abc ab", false), (std::vector<int32_t>{5, 3, 4}));
}

TEST(BadInput, TokenizerMalformedJson) { expect_bad_tokenizer("malformed.json", "{\"model\": {\"type\": \"BPE\", ", "malformed JSON"); }

TEST(BadInput, TokenizerTruncatedJson) {
    const std::string full = small_tokenizer_json();
    expect_bad_tokenizer("truncated.json", full.substr(0, full.size() / 2), "malformed JSON");
}

TEST(BadInput, TokenizerUnknownModelType) {
    std::string j = small_tokenizer_json();
    j.replace(j.find("\"BPE\""), 5, "\"Unigram\"");
    expect_bad_tokenizer("unigram.json", j, "model type 'Unigram' is not supported");
    // WordPiece is read (BERT's uncased normalisation); one with another normaliser is refused, named
    j = small_tokenizer_json();
    j.replace(j.find("\"BPE\""), 5, "\"WordPiece\"");
    std::string err;
    const std::string p = test::tmp_path("wordpiece.json");
    write_bytes(p, j);
    const int rc = run_cli("tokenize --tokenizer " + p + " hello", &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find("a WordPiece tokenizer without BertNormalizer is not supported"), std::string::npos) << err;
}

TEST(BadInput, TokenizerUnknownPreTokenizer) {
    expect_bad_tokenizer("metaspace.json", small_tokenizer_json("", R"({"type": "Metaspace", "replacement": "_"})"),
                         "pre_tokenizer type 'Metaspace' is not supported");
}

TEST(BadInput, TokenizerMergeNamesUnknownToken) {
    std::string j = small_tokenizer_json();
    j.replace(j.find("\"ab c\""), 6, "\"ab zz\"");
    expect_bad_tokenizer("badmerge.json", j, "merge 1 names unknown token 'zz'");
}

TEST(BadInput, TokenizerInvalidRegex) {
    expect_bad_tokenizer("badregex.json",
                         small_tokenizer_json("", R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(\\p{L}+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]})"),
                         "invalid pre-tokenizer regex");
}

// Token ids that are floats or beyond the id range are refused, not converted: 6.5e+34 (a float-to-int overflow, the
// fuzzer's finding), 2^32 + 5 (an int32 conversion would wrap it to 5) and -1.
TEST(BadInput, TokenizerIdNotAnInteger) {
    for (const char* i : {"6.5e+34", "4294967301", "-1", "\"3\""}) {
        const std::string id = i;
        std::string j = small_tokenizer_json();
        j.replace(j.find("\"b\": 1"), 6, "\"b\": " + id);
        expect_bad_tokenizer("float_id.json", j, "token id " + id + " is not an integer in [0, 16777215]");
        j = small_tokenizer_json();
        j.replace(j.find("\"id\": 6"), 7, "\"id\": " + id);
        expect_bad_tokenizer("float_added_id.json", j, "token id " + id + " is not an integer in [0, 16777215]");
    }
}

// A field of an unexpected JSON type (the post-processor's "type" a number: a fuzzer's finding) is one bad-input line,
// not nlohmann's type_error escaping.
TEST(BadInput, TokenizerFieldOfWrongType) {
    std::string j = small_tokenizer_json();
    j.insert(j.size() - 1, R"(, "post_processor": {"type": 5})");
    expect_bad_tokenizer("post_type.json", j, "unexpected post_processor or tokenizer_config.json structure",
                         [](const std::string& p) { (void)Vocab::load(p); });
}

// The same for tokenizer_config.json's named chat templates: a name that is not a string is one line, exit 2.
TEST(BadInput, ChatTemplateConfigFieldOfWrongType) {
    const std::string cfg = test::tmp_path("tokenizer_config.json"), msgs = test::tmp_path("msgs.json");
    write_bytes(cfg, R"({"chat_template": [{"name": 5, "template": "{{ messages[0].content }}"}]})");
    write_bytes(msgs, R"([{"role": "user", "content": "hi"}])");
    std::string err;
    const int rc = run_cli("chat-template render --template " + cfg + " --messages @" + msgs, &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find("unexpected chat_template structure"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "not one line: " << err;
}

TEST(BadInput, TokenizerTiktokenBadLine) {
    expect_bad_tokenizer("bad.tiktoken", "IQ== 0\nIg== 1\n!!!notbase64 2\n", ":3: not a tiktoken rank line");
}

TEST(BadInput, TokenizerGgufUnknownPre) {
    gguf::Metadata meta;
    meta.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
    meta.set("tokenizer.ggml.pre", gguf::Value::str("no-such-pre"));
    meta.set("tokenizer.ggml.tokens", gguf::Value::strings({"a", "b", "ab"}));
    meta.set("tokenizer.ggml.merges", gguf::Value::strings({"a b"}));
    const std::string p = test::tmp_path("badpre.gguf");
    gguf::write(p, meta, {});
    std::string err;
    try {
        (void)BpeTokenizer::load(p);
        ADD_FAILURE() << "unknown pre-tokenizer accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown pre-tokenizer 'no-such-pre'"), std::string::npos) << e.what();
    }
    const int rc = run_cli("tokenize --tokenizer " + p + " hello", &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << err;
}

TEST(BadInput, TokenizerDecodeIdOutOfRange) {
    const std::string p = test::tmp_path("good_tokenizer2.json");
    write_bytes(p, small_tokenizer_json());
    const BpeTokenizer t = BpeTokenizer::load(p);
    for (int32_t bad : {-1, 7, 1 << 30}) {
        try {
            (void)t.decode({0, bad});
            ADD_FAILURE() << "decode accepted id " << bad;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::BadInput);
            EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
        }
    }
}

TEST(BadInput, TokenizerMissingFile) { 
    std::string err;
    const int rc = run_cli("tokenize --tokenizer " + test::tmp_path("nope.json") + " hello", &err);
    if (rc == -1) GTEST_SKIP() << "LLMFORGE_BIN not set";
    EXPECT_EQ(rc, 2) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// A vocabulary-only GGUF (llama.cpp's tokenizer test files) is described, not rejected as a model missing its tensors.
TEST(BadInput, InfoOnVocabularyOnlyGguf) {
    REQUIRE_GOLDEN();
    const std::string out = test::tmp_path("info.txt");
    const char* bin = std::getenv("LLMFORGE_BIN");
    if (!bin) GTEST_SKIP() << "LLMFORGE_BIN not set";
    const int st = std::system((std::string(bin) + " info " + test::golden_dir() + "/vocab/ggml-vocab-gpt-2.gguf > " + out).c_str());
    EXPECT_EQ(WEXITSTATUS(st), 0);
    const std::string text = test::read_file(out);
    EXPECT_NE(text.find("vocabulary only"), std::string::npos) << text;
    EXPECT_NE(text.find("gpt2 / gpt-2, 50257 tokens"), std::string::npos) << text;
}
