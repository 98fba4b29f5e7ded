// llmforge quantize IN OUT TYPE [--imatrix FILE] [--output-type T] [--token-embedding-type T] [--pure] [-t N] [--json]
// A model in f32, f16 or bf16 (GGUF or safetensors) to a quantised GGUF, with llama-quantize's types and mixes.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/quantize.h"

namespace llmforge::cli {

namespace {
DType parse_tensor_type(const std::string& s, const char* flag) {
    std::string low = s;
    for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                    DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS})
        if (low == dtype_name(t)) return t;
    throw_bad_input("quantize: %s: type '%s' is not supported (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs)",
                    flag, s.c_str());
}
}  // namespace

void add_quantize(CLI::App& app) {
    std::string types;
    for (const QuantMix& m : quant_mixes()) types += (types.empty() ? "" : ", ") + m.name;
    auto* cmd = app.add_subcommand("quantize", "Quantise a model to a GGUF of ggml's block types, as llama-quantize does");
    struct Opts {
        std::string in, out, type, imatrix, output_type, token_type;
        bool pure = false, allow_requantize = false, json = false;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("input", o->in, "model: GGUF, or safetensors (file or directory with config.json), f32/f16/bf16")->required();
    cmd->add_option("output", o->out, "quantised GGUF to write")->required();
    cmd->add_option("type", o->type, "type or mix: " + types)->required();
    cmd->add_option("--imatrix", o->imatrix, "importance matrix (llmforge imatrix or llama-imatrix) weighting each column's error")->default_str("none");
    cmd->add_option("--output-type", o->output_type, "type of output.weight (default: the mix's rule, Q6_K for most)")->default_str("the mix's");
    cmd->add_option("--token-embedding-type", o->token_type, "type of token_embd.weight")->default_str("the mix's");
    cmd->add_flag("--pure", o->pure, "every matrix the type itself: no mix rules");
    cmd->add_flag("--allow-requantize", o->allow_requantize, "accept an already-quantised input (dequantised first: more error)");
    add_threads_option(cmd, o->threads, "threads", 0);
    cmd->add_flag("--json", o->json, "print one JSON object (per tensor and totals)");
    cmd->callback([o] {
        QuantizeOptions q;
        q.type = o->type;
        q.imatrix = o->imatrix;
        q.pure = o->pure;
        q.allow_requantize = o->allow_requantize;
        q.threads = o->threads;
        if (!o->output_type.empty()) q.output_type = parse_tensor_type(o->output_type, "--output-type");
        if (!o->token_type.empty()) q.token_embedding_type = parse_tensor_type(o->token_type, "--token-embedding-type");
        const QuantizeReport r = quantize_model(o->in, o->out, q);
        if (o->json) {
            nlohmann::json tensors = nlohmann::json::array();
            for (const auto& t : r.tensors)
                tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"from", dtype_name(t.from)}, {"to", dtype_name(t.to)},
                                   {"bytes_in", t.bytes_in}, {"bytes_out", t.bytes_out}, {"imatrix", t.used_imatrix}});
            nlohmann::json j = {{"input", o->in}, {"output", o->out}, {"type", r.ftype}, {"n_params", r.n_params},
                                {"bytes_in", r.bytes_in}, {"bytes_out", r.bytes_out}, {"bpw_in", r.bpw_in()}, {"bpw_out", r.bpw_out()},
                                {"tensors", tensors}};
            std::printf("%s\n", j.dump(2).c_str());
            return;
        }
        for (const auto& t : r.tensors) {
            std::string shape;
            for (int64_t d : t.shape) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
            std::fprintf(stderr, "%-32s [%s] %s -> %s%s\n", t.name.c_str(), shape.c_str(), dtype_name(t.from), dtype_name(t.to),
                         t.used_imatrix ? " (imatrix)" : "");
        }
        std::printf("%s: %s -> %s\n", r.ftype.c_str(), o->in.c_str(), o->out.c_str());
        std::printf("size: %s (%.2f bits per weight) -> %s (%.2f bits per weight), %.1f%% of the input\n", human_bytes(static_cast<double>(r.bytes_in)).c_str(),
                    r.bpw_in(), human_bytes(static_cast<double>(r.bytes_out)).c_str(), r.bpw_out(),
                    100.0 * static_cast<double>(r.bytes_out) / static_cast<double>(r.bytes_in ? r.bytes_in : 1));
    });
}

}  // namespace llmforge::cli
