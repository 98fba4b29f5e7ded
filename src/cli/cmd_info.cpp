// llmforge info MODEL | --preset NAME: architecture, sizes, memory, tensors, metadata.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/compute.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"

namespace llmforge::cli {

namespace {

struct Memory {
    double weights_f32, weights_f16, weights_bf16, kv_f32, kv_f16, train_state, train_activations;
};

// Memory to run: weights at each dtype plus the KV cache for one sequence at full context (with a sliding window,
// the ring of window + 511 cells a Transformer with the default 512-token batches keeps).
// Memory to train with AdamW in fp32: weights + gradients + Adam's m and v = 16 bytes per parameter, plus the
// activations of one sequence at full context, estimated as s·b·h·(34 + 5·a·s/h) bytes per layer for 16-bit
// activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", eq. 1), ×2 for fp32.
Memory memory_of(const ModelConfig& c) {
    Memory m{};
    const double p = static_cast<double>(c.n_params());
    m.weights_f32 = p * 4;
    m.weights_f16 = p * 2;
    m.weights_bf16 = p * 2;
    m.kv_f32 = KVCache::bytes(c, c.n_ctx, 1, DType::F32, 512);
    m.kv_f16 = KVCache::bytes(c, c.n_ctx, 1, DType::F16, 512);
    m.train_state = p * 16;
    const double s = static_cast<double>(c.n_ctx), h = static_cast<double>(c.n_embd), a = static_cast<double>(c.n_head);
    m.train_activations = 2.0 * static_cast<double>(c.n_layer) * s * h * (34.0 + 5.0 * a * s / h);
    return m;
}

// What the block computes, in a line: "RMSNorm, RoPE, separate Q/K/V, SwiGLU MLP, no biases".
std::string block_summary(const ModelConfig& c) {
    std::string s = c.norm == NormKind::LayerNorm ? "LayerNorm" : "RMSNorm";
    if (c.post_norms) s += " before and after each sub-layer";
    if (c.post_ln) s += " after each residual add";
    if (c.encoder) s = "encoder: " + s + (c.causal ? "" : ", bidirectional attention");
    if (c.embd_norm) s += ", embeddings normalised";
    if (c.n_token_types > 0) s += ", segment embeddings";
    if (c.embd_scale) s += ", embeddings scaled by √n_embd";
    s += c.learned_positions ? ", learned positions" : ", RoPE";
    s += c.fused_qkv ? ", fused QKV" : ", separate Q/K/V";
    if (c.qk_norm) s += ", QK-norm";
    if (c.sliding_window > 0) {
        s += ", sliding window of " + std::to_string(c.sliding_window);
        if (c.sliding_window_pattern > 1)
            s += c.sliding_window_pattern == 2 ? " (every other layer)"
                                               : " (" + std::to_string(c.sliding_window_pattern - 1) + " layers in " + std::to_string(c.sliding_window_pattern) + ")";
    }
    if (c.n_head_dim) s += ", heads of " + std::to_string(c.n_head_dim) + " (queries " + std::to_string(c.q_dim()) + " wide)";
    if (c.attn_scale > 0) s += strprintf(", scores scaled by %.6g", static_cast<double>(c.attn_scale));
    if (c.attn_softcap > 0) s += strprintf(", scores soft-capped at %g", static_cast<double>(c.attn_softcap));
    s += c.mlp == MlpKind::GeGLU ? ", GeGLU MLP" : c.gated_mlp() ? ", SwiGLU MLP" : c.mlp == MlpKind::Gelu ? ", GELU (erf) MLP" : ", GELU MLP";
    std::string biases;
    if (c.qkv_bias) biases += "QKV";
    if (c.out_bias) biases += biases.empty() ? "output" : ", output";
    if (c.mlp_bias) biases += biases.empty() ? "MLP" : ", MLP";
    s += biases.empty() ? ", no biases" : ", biases on " + biases;
    if (c.final_softcap > 0) s += strprintf(", logits soft-capped at %g", static_cast<double>(c.final_softcap));
    if (c.encoder)
        s += c.pooling == Pooling::Rank   ? ", a reranker's head on [CLS] (dense + tanh, one score)"
             : c.pooling == Pooling::Cls  ? ", [CLS] pooling"
             : c.pooling == Pooling::Last ? ", last-token pooling"
                                          : ", mean pooling";
    return s;
}

nlohmann::json config_json(const ModelConfig& c) {
    nlohmann::json j = {{"architecture", c.arch}, {"block", block_summary(c)}, {"name", c.name}, {"n_vocab", c.n_vocab}, {"n_ctx", c.n_ctx},
                        {"n_embd", c.n_embd}, {"n_ff", c.n_ff}, {"n_layer", c.n_layer}, {"n_head", c.n_head}, {"n_head_kv", c.n_head_kv},
                        {"head_dim", c.head_dim()}, {"norm_eps", static_cast<double>(std::stod(strprintf("%g", static_cast<double>(c.norm_eps))))},
                        {"tied_embeddings", c.tied_embeddings}, {"n_params", c.n_params()}};
    if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
    if (c.sliding_window > 0 && c.sliding_window_pattern > 1) j["sliding_window_pattern"] = c.sliding_window_pattern;
    if (c.attn_scale > 0) j["attention_scale"] = c.attn_scale;
    if (c.attn_softcap > 0) j["attention_softcap"] = c.attn_softcap;
    if (c.final_softcap > 0) j["final_logit_softcap"] = c.final_softcap;
    if (c.uses_rope()) {  // RoPE: only for the families that use it (GPT-2 has learned positions)
        j["rope_theta"] = c.rope_theta;
        j["rope_style"] = c.rope_style == RopeStyle::Half ? "half" : "interleaved";
        if (c.rope_scaling == RopeScaling::Linear) j["rope_scaling"] = {{"type", "linear"}, {"factor", c.rope_scale}};
        if (c.rope_scaling == RopeScaling::Yarn)
            j["rope_scaling"] = {{"type", "yarn"}, {"factor", c.rope_scale}, {"original_context", c.rope_orig_ctx}, {"beta_fast", c.rope_yarn_beta_fast},
                                 {"beta_slow", c.rope_yarn_beta_slow}, {"attn_factor", c.rope_attn_factor}};
        if (c.rope_scaling == RopeScaling::Llama3)
            j["rope_scaling"] = {{"type", "llama3"}, {"factor", c.rope_scale}, {"low_freq_factor", c.rope_low_freq},
                                 {"high_freq_factor", c.rope_high_freq}, {"original_context", c.rope_orig_ctx}};
    } else {
        j["positions"] = "learned";
    }
    return j;
}

void print_config(const ModelConfig& c) {
    std::printf("architecture   %s%s\n", c.arch.c_str(), c.n_head_kv < c.n_head ? " (grouped-query attention)" : "");
    std::printf("block          %s\n", block_summary(c).c_str());
    std::printf("parameters     %lld (%s)\n", static_cast<long long>(c.n_params()), human_count(static_cast<double>(c.n_params())).c_str());
    std::printf("layers         %lld\n", static_cast<long long>(c.n_layer));
    std::printf("d_model        %lld\n", static_cast<long long>(c.n_embd));
    std::printf("d_ff           %lld\n", static_cast<long long>(c.n_ff));
    std::printf("heads          %lld (kv %lld, head dim %lld)\n", static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv),
                static_cast<long long>(c.head_dim()));
    std::printf("vocabulary     %lld\n", static_cast<long long>(c.n_vocab));
    std::printf("context        %lld\n", static_cast<long long>(c.n_ctx));
    if (c.uses_rope())
        std::printf("rope           theta %g, %s pairs%s\n", static_cast<double>(c.rope_theta), c.rope_style == RopeStyle::Half ? "half-split" : "interleaved",
                    c.rope_scaling == RopeScaling::Linear ? strprintf(", linear scaling × %g", static_cast<double>(c.rope_scale)).c_str()
                    : c.rope_scaling == RopeScaling::Llama3
                        ? strprintf(", Llama 3 scaling × %g (from %lld positions)", static_cast<double>(c.rope_scale), static_cast<long long>(c.rope_orig_ctx)).c_str()
                    : c.rope_scaling == RopeScaling::Yarn
                        ? strprintf(", YaRN × %g (from %lld positions)", static_cast<double>(c.rope_scale), static_cast<long long>(c.rope_orig_ctx)).c_str()
                        : "");
    std::printf("norm eps       %g\n", static_cast<double>(c.norm_eps));
    std::printf("embeddings     %s\n", c.encoder ? "no output head (an encoder)" : c.tied_embeddings ? "tied (output = token embedding)" : "untied");
}

// stored_weights > 0: the file's own tensor bytes (a quantised file runs from them as they are), shown first.
void print_memory(const Memory& m, const ModelConfig& c, double stored_weights = 0) {
    const int64_t cells = KVCache::cells_for(c, c.n_ctx, 512);
    std::printf("\nmemory to run (weights + KV cache for one sequence of %lld tokens%s)\n", static_cast<long long>(c.n_ctx),
                cells < c.n_ctx ? strprintf(": a sliding-window ring of %lld cells", static_cast<long long>(cells)).c_str() : "");
    if (stored_weights > 0)
        std::printf("  as stored weights %-8s + KV f16 %-12s = %s\n", human_bytes(stored_weights).c_str(), human_bytes(m.kv_f16).c_str(),
                    human_bytes(stored_weights + m.kv_f16).c_str());
    std::printf("  f32   weights %-12s + KV f32 %-12s = %s\n", human_bytes(m.weights_f32).c_str(), human_bytes(m.kv_f32).c_str(),
                human_bytes(m.weights_f32 + m.kv_f32).c_str());
    std::printf("  f16   weights %-12s + KV f16 %-12s = %s\n", human_bytes(m.weights_f16).c_str(), human_bytes(m.kv_f16).c_str(),
                human_bytes(m.weights_f16 + m.kv_f16).c_str());
    std::printf("  bf16  weights %-12s + KV f16 %-12s = %s\n", human_bytes(m.weights_bf16).c_str(), human_bytes(m.kv_f16).c_str(),
                human_bytes(m.weights_bf16 + m.kv_f16).c_str());
    std::printf("memory to train with AdamW (fp32 weights, gradients, m, v: 16 bytes/parameter)\n");
    std::printf("  state %s + activations of one %lld-token sequence ≈ %s (fp32, no recomputation) = %s\n",
                human_bytes(m.train_state).c_str(), static_cast<long long>(c.n_ctx), human_bytes(m.train_activations).c_str(),
                human_bytes(m.train_state + m.train_activations).c_str());
}

nlohmann::json memory_json(const Memory& m) {
    return {{"run", {{"weights_f32", m.weights_f32}, {"weights_f16", m.weights_f16}, {"weights_bf16", m.weights_bf16},
                     {"kv_cache_f32", m.kv_f32}, {"kv_cache_f16", m.kv_f16}}},
            {"train_adamw", {{"state", m.train_state}, {"activations", m.train_activations}, {"total", m.train_state + m.train_activations}}}};
}

// --train-tokens: what training this model on that many tokens costs, with every assumption printed.
nlohmann::json compute_json(const compute::Plan& p, const compute::Estimate& e, int64_t T) {
    return {{"train_tokens", p.tokens}, {"seq_len", T}, {"matmul_params", e.n_matmul}, {"params", e.n_params},
            {"flops", {{"dense_6ND", e.dense}, {"attention", e.attention}, {"total", e.total}, {"pf_days", e.pf_days}, {"dense_only", p.dense_only}}},
            {"gpu", {{"name", p.gpu.name}, {"peak_tflops", p.gpu.peak_tflops}, {"power_w", p.gpu.power_w}, {"price_per_hour", p.gpu.price_per_hour},
                     {"count", p.n_gpus}, {"source", p.gpu.source}}},
            {"assumptions", {{"mfu", p.mfu}, {"pue", p.pue}, {"carbon_g_per_kwh", p.carbon_g_per_kwh}}},
            {"estimate", {{"achieved_tflops_per_gpu", e.achieved_flops / 1e12}, {"gpu_hours", e.gpu_hours}, {"wall_hours", e.wall_hours},
                          {"wall_days", e.wall_hours / 24}, {"cost_usd", e.cost}, {"energy_mwh", e.energy_mwh}, {"co2_tonnes", e.co2_tonnes}}}};
}

void print_compute(const ModelConfig& c, const compute::Plan& p, const compute::Estimate& e, int64_t T) {
    std::printf("\ntraining compute: %s tokens in sequences of %lld\n", strprintf("%.4g", p.tokens).c_str(), static_cast<long long>(T));
    std::printf("  N, parameters that multiply activations  %.6g (%s; of %s in all: lookups, norms and biases cost no products)\n", e.n_matmul,
                human_count(e.n_matmul).c_str(), human_count(e.n_params).c_str());
    std::printf("  dense        6·N·D                       %.4e FLOPs\n", e.dense);
    std::printf("  attention    12·L·d_attn·T·D             %.4e FLOPs (L %lld, d_attn %lld)%s\n", e.attention, static_cast<long long>(c.n_layer),
                static_cast<long long>(c.q_dim()), p.dense_only ? ", left out (--dense-only)" : "");
    std::printf("  total                                    %.4e FLOPs = %.4g PF-days\n", e.total, e.pf_days);
    std::printf("on %lld × %s at MFU %.4g: %.4g TFLOPS achieved per GPU\n", static_cast<long long>(p.n_gpus), p.gpu.name.c_str(), p.mfu,
                e.achieved_flops / 1e12);
    std::printf("  GPU-hours    %.4g (%.4g GPU-years); wall time %.4g days on %lld GPUs\n", e.gpu_hours, e.gpu_hours / (24 * 365), e.wall_hours / 24,
                static_cast<long long>(p.n_gpus));
    std::printf("  cost         $%s at $%.2f per GPU-hour\n", e.cost >= 1e4 ? human_count(e.cost).c_str() : strprintf("%.2f", e.cost).c_str(),
                p.gpu.price_per_hour);
    std::printf("  energy       %.4g MWh = GPU-hours × %g W × PUE %g\n", e.energy_mwh, p.gpu.power_w, p.pue);
    std::printf("  CO₂          %.4g t at %g g CO₂e per kWh\n", e.co2_tonnes, p.carbon_g_per_kwh);
    std::printf("assumptions (each can be overridden):\n");
    std::printf("  FLOPs are model FLOPs (PaLM, Chowdhery et al. 2022, App. B): the forward pass 2·N + 4·L·d_attn·T per token, the backward\n"
                "    twice that; attention over all T keys, no saving for the causal mask; recomputation not counted\n");
    std::printf("  %s (--gpu, --gpu-peak, --gpu-power)\n", p.gpu.source.empty() ? "the GPU's figures as given" : p.gpu.source.c_str());
    std::printf("  MFU %g: the share of the peak a run sustains (--mfu; large runs reach 0.3-0.5, PaLM 540B 0.462)\n", p.mfu);
    std::printf("  price $%.2f per GPU-hour: a round rental figure, not a quote (--price)\n", p.gpu.price_per_hour);
    std::printf("  %g W per GPU (--gpu-power; a datasheet's is the board alone, without its share of the host)\n", p.gpu.power_w);
    std::printf("  PUE %g: the data centre's power over the IT equipment's (--pue)\n", p.pue);
    std::printf("  %g g CO₂e per kWh: the grid's carbon intensity (--carbon; Patterson et al. 2021 used 429 for GPT-3)\n", p.carbon_g_per_kwh);
}

}  // namespace

// Any GGUF file, read as it is: every tensor (of any ggml type, quantised ones included) and every metadata value; the
// architecture and tokenizer as llmforge reads them, or why it cannot run the file yet.
static void describe_gguf(const std::string& path, bool all, bool as_json) {
    const gguf::File f = gguf::read(path);
    std::string cfg_error, vocab_error;
    std::optional<ModelConfig> cfg;
    std::optional<Vocab> vocab;
    try {
        if (!f.tensors.empty()) {
            cfg = config_from_gguf(f.meta, f.tensors, path);
        }
    } catch (const Error& e) {
        cfg_error = e.what();
    }
    try {
        if (f.meta.find("tokenizer.ggml.model")) vocab = Vocab::from_gguf(f.meta, path);
    } catch (const Error& e) {
        vocab_error = e.what();
    }
    std::map<std::string, std::pair<int64_t, double>> by_type;  // type → tensors, bytes
    std::vector<std::string> unsupported;
    double bytes = 0;
    for (const Tensor& t : f.tensors) {
        auto& e = by_type[dtype_name(t.dtype)];
        e.first += 1;
        e.second += static_cast<double>(t.nbytes());
        bytes += static_cast<double>(t.nbytes());
        if (!dtype_supported(t.dtype) && std::find(unsupported.begin(), unsupported.end(), dtype_name(t.dtype)) == unsupported.end())
            unsupported.push_back(dtype_name(t.dtype));
    }
    std::string runnable = "yes";
    if (f.tensors.empty()) runnable = "no: a vocabulary only, no weights";
    else if (!cfg_error.empty()) runnable = "no: " + cfg_error;
    else if (!unsupported.empty()) {
        runnable = "not yet: llmforge's kernels do not handle";
        for (const auto& u : unsupported) runnable += " " + u;
        runnable += " weights yet (f32, f16 and bf16 they do)";
    }
    if (as_json) {
        nlohmann::json j = cfg ? config_json(*cfg) : nlohmann::json::object();
        if (cfg) j["memory"] = memory_json(memory_of(*cfg));
        j["format"] = "gguf";
        j["gguf_version"] = f.version;
        j["architecture"] = f.meta.get_string("general.architecture", "");
        j["runnable"] = runnable == "yes";
        if (runnable != "yes") j["not_runnable_because"] = runnable;
        j["tokenizer"] = vocab ? nlohmann::json{{"model", vocab->model}, {"pre", vocab->pre}, {"n_tokens", vocab->size()}, {"bos", vocab->bos}, {"eos", vocab->eos}}
                               : vocab_error.empty() ? nlohmann::json(nullptr) : nlohmann::json{{"error", vocab_error}};
        nlohmann::json types = nlohmann::json::object();
        for (const auto& [t, e] : by_type) types[t] = {{"tensors", e.first}, {"bytes", e.second}};
        j["tensor_types"] = types;
        nlohmann::json ts = nlohmann::json::array();
        for (const auto& t : f.tensors) ts.push_back({{"name", t.name}, {"type", dtype_name(t.dtype)}, {"shape", t.shape}});
        j["tensors"] = ts;
        nlohmann::json meta = nlohmann::json::object();
        for (const auto& [k, v] : f.meta.kv) meta[k] = v.to_string(all ? 1000000 : 8);
        j["metadata"] = meta;
        std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        return;
    }
    std::printf("file           %s (gguf v%u, %zu tensors, %s of tensor data, %zu metadata keys)\n", path.c_str(), f.version, f.tensors.size(),
                human_bytes(bytes).c_str(), f.meta.kv.size());
    if (cfg) print_config(*cfg);
    else if (!f.tensors.empty()) std::printf("architecture   %s\n", f.meta.get_string("general.architecture", "?").c_str());
    std::printf("runnable       %s\n", runnable.c_str());
    if (vocab)
        std::printf("tokenizer      %s%s, %d tokens (bos %d, eos %d)\n", vocab->model.c_str(), vocab->pre.empty() ? "" : (" / " + vocab->pre).c_str(),
                    vocab->size(), vocab->bos, vocab->eos);
    else std::printf("tokenizer      %s\n", vocab_error.empty() ? "none" : vocab_error.c_str());
    if (!by_type.empty()) {
        std::printf("tensor types  ");
        for (const auto& [t, e] : by_type) std::printf(" %s ×%lld (%s)", t.c_str(), static_cast<long long>(e.first), human_bytes(e.second).c_str());
        std::printf("\n");
    }
    bool blocks = false;
    for (const Tensor& t : f.tensors) blocks = blocks || dtype_block_size(t.dtype) > 1;
    if (cfg) print_memory(memory_of(*cfg), *cfg, blocks ? static_cast<double>(bytes) : 0);
    if (!f.tensors.empty()) {
        std::printf("\ntensors (%zu)\n", f.tensors.size());
        size_t shown = 0;
        for (const auto& t : f.tensors) {
            if (!all && shown >= 12) { std::printf("  ... (%zu more; --all lists them)\n", f.tensors.size() - shown); break; }
            std::printf("  %-32s %-7s %s\n", t.name.c_str(), dtype_name(t.dtype), t.shape_str().c_str());
            ++shown;
        }
    }
    std::printf("\nmetadata (%zu)\n", f.meta.kv.size());
    for (const auto& [k, v] : f.meta.kv) std::printf("  %-40s %s\n", k.c_str(), v.to_string(all ? 1000000 : 8).c_str());
}

void add_info(CLI::App& app) {
    auto* cmd = app.add_subcommand("info", "Show a model's architecture, sizes, memory needs, tensors and metadata");
    auto model = std::make_shared<std::string>();
    auto preset_name = std::make_shared<std::string>();
    auto tokenizer = std::make_shared<std::string>();
    auto json_out = std::make_shared<bool>(false);
    auto all = std::make_shared<bool>(false);
    cmd->add_option("model", *model, "GGUF, llama2.c .bin, or safetensors directory");
    cmd->add_option("--preset", *preset_name, "a named configuration instead of a file (" + [] {
        std::string s;
        for (const auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
        return s;
    }() + ")")->default_str("none: describe MODEL");
    cmd->add_option("--tokenizer", *tokenizer, "llama2.c tokenizer.bin")->default_str("the model's own");
    cmd->add_flag("--json", *json_out, "print one JSON object");
    cmd->add_flag("--all", *all, "list every tensor, and every metadata value in full");
    // the compute account
    auto plan = std::make_shared<compute::Plan>();
    auto gpu_name = std::make_shared<std::string>("h100");
    auto peak = std::make_shared<double>(0), power = std::make_shared<double>(0), price = std::make_shared<double>(-1);
    cmd->add_option("--train-tokens", plan->tokens, "estimate the compute of training on this many tokens (e.g. 300e9): FLOPs, GPU-hours, cost, energy, CO₂")
        ->default_str("none")->check(above(0));
    cmd->add_option("--seq-len", plan->seq_len, "with --train-tokens: the training sequence length (attention's FLOPs grow with it)")
        ->default_str("the model's context")->check(at_least(0, "0: the model's context"));
    std::string gpu_list;
    for (const compute::Gpu& g : compute::gpus()) gpu_list += (gpu_list.empty() ? "" : ", ") + g.name;
    cmd->add_option("--gpu", *gpu_name, "with --train-tokens: the GPU whose datasheet peak and power to assume (" + gpu_list + ")")->capture_default_str();
    cmd->add_option("--gpu-peak", *peak, "the GPU's dense 16-bit peak in TFLOPS instead of the datasheet's")->default_str("--gpu's")->check(at_least(0, "0: --gpu's"));
    cmd->add_option("--gpu-power", *power, "watts per GPU instead of the board's TDP (e.g. with its share of the host)")->default_str("--gpu's")->check(at_least(0, "0: --gpu's"));
    cmd->add_option("--price", *price, "US$ per GPU-hour")->default_str("--gpu's assumed rental price")->check(at_least(0));
    cmd->add_option("--mfu", plan->mfu, "model FLOPs utilisation: the share of the peak the run sustains")->capture_default_str()->check(between(1e-9, 1));
    cmd->add_option("--pue", plan->pue, "the data centre's power usage effectiveness")->capture_default_str()->check(at_least(1));
    cmd->add_option("--carbon", plan->carbon_g_per_kwh, "grid carbon intensity, g CO₂e per kWh")->capture_default_str()->check(at_least(0));
    cmd->add_option("--gpus", plan->n_gpus, "GPUs training together (only the wall time depends on it)")->capture_default_str()->check(at_least(1));
    cmd->add_flag("--dense-only", plan->dense_only, "count 6·N·D alone, leaving attention out (as the GPT-3 paper's 3.14e23 does)");
    cmd->callback([=] {
        if (model->empty() == preset_name->empty()) throw_bad_input("info: give either a MODEL file or --preset NAME");
        if (plan->tokens > 0) {
            compute::Plan p = *plan;
            p.gpu = compute::gpu(*gpu_name);
            if (*peak > 0) p.gpu.peak_tflops = *peak, p.gpu.source = "";
            if (*power > 0) p.gpu.power_w = *power, p.gpu.source = "";
            if (*price >= 0) p.gpu.price_per_hour = *price;
            if (p.gpu.source.empty()) p.gpu.source = strprintf("%s: %g TFLOPS peak, %g W (as given)", p.gpu.name.c_str(), p.gpu.peak_tflops, p.gpu.power_w);
            ModelConfig c;
            if (!preset_name->empty()) {
                c = preset(*preset_name);
            } else if (gguf::has_magic(*model) && tokenizer->empty()) {
                const gguf::File f = gguf::read(*model);
                c = config_from_gguf(f.meta, f.tensors, *model);
            } else {
                LoadOptions o;
                o.tokenizer_path = *tokenizer;
                c = load_model(*model, o).config;
            }
            const int64_t T = p.seq_len > 0 ? p.seq_len : c.n_ctx;
            const compute::Estimate e = compute::estimate(c, p);
            if (*json_out) {
                nlohmann::json j = config_json(c);
                j["compute"] = compute_json(p, e, T);
                std::printf("%s\n", j.dump(2).c_str());
            } else {
                std::printf("%s %s\n", preset_name->empty() ? "model         " : "preset        ", preset_name->empty() ? model->c_str() : c.name.c_str());
                print_config(c);
                print_compute(c, p, e, T);
            }
            return;
        }
        if (!preset_name->empty()) {
            const ModelConfig c = preset(*preset_name);
            const Memory m = memory_of(c);
            if (*json_out) {
                nlohmann::json j = config_json(c);
                j["memory"] = memory_json(m);
                std::printf("%s\n", j.dump(2).c_str());
            } else {
                std::printf("preset         %s\n", c.name.c_str());
                print_config(c);
                print_memory(m, c);
            }
            return;
        }
        if (gguf::has_magic(*model) && tokenizer->empty()) return describe_gguf(*model, *all, *json_out);
        LoadOptions o;
        o.tokenizer_path = *tokenizer;
        const Model md = load_model(*model, o);
        const ModelConfig& c = md.config;
        if (*json_out) {
            nlohmann::json j = config_json(c);
            j["format"] = md.format;
            j["memory"] = memory_json(memory_of(c));
            j["mapped_bytes"] = md.mapped_bytes;
            j["owned_bytes"] = md.owned_bytes;
            j["tokenizer"] = md.vocab ? nlohmann::json{{"model", md.vocab->model}, {"n_tokens", md.vocab->size()}, {"bos", md.vocab->bos}, {"eos", md.vocab->eos}} : nlohmann::json(nullptr);
            nlohmann::json ts = nlohmann::json::array();
            for (const auto& t : md.tensors) ts.push_back({{"name", t.name}, {"type", dtype_name(t.dtype)}, {"shape", t.shape}});
            j["tensors"] = ts;
            nlohmann::json meta = nlohmann::json::object();
            for (const auto& [k, v] : md.meta.kv) meta[k] = v.to_string();
            j["metadata"] = meta;
            std::printf("%s\n", j.dump(2).c_str());
            return;
        }
        std::printf("file           %s (%s)\n", md.path.c_str(), md.format.c_str());
        print_config(c);
        std::printf("tokenizer      %s\n", md.vocab ? strprintf("%s, %d tokens (bos %d, eos %d)", md.vocab->model.c_str(), md.vocab->size(), md.vocab->bos, md.vocab->eos).c_str() : "none");
        std::printf("weights        %s memory-mapped, %s copied\n", human_bytes(static_cast<double>(md.mapped_bytes)).c_str(), human_bytes(static_cast<double>(md.owned_bytes)).c_str());
        print_memory(memory_of(c), c);
        std::printf("\ntensors (%zu)\n", md.tensors.size());
        size_t shown = 0;
        for (const auto& t : md.tensors) {
            if (!*all && shown >= 12) { std::printf("  ... (%zu more; --all lists them)\n", md.tensors.size() - shown); break; }
            std::printf("  %-32s %-5s %s\n", t.name.c_str(), dtype_name(t.dtype), t.shape_str().c_str());
            ++shown;
        }
        if (!md.meta.kv.empty()) {
            std::printf("\nmetadata\n");
            for (const auto& [k, v] : md.meta.kv) std::printf("  %-32s %s\n", k.c_str(), v.to_string(*all ? 1000000 : 8).c_str());
        }
    });
}

}  // namespace llmforge::cli
