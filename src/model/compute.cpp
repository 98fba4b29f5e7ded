// The compute account (include/llmforge/compute.h): model FLOPs per token from the block description, and the GPU
// estimate of a training run.
#include "llmforge/compute.h"

#include <algorithm>

#include "llmforge/error.h"

namespace llmforge::compute {

double matmul_params(const ModelConfig& c) {
    double n = 0;
    for (const auto& [name, shape] : expected_tensors(c)) {
        if (shape.size() != 2) continue;  // norms and biases: elementwise
        const bool lookup = name == "position_embd.weight" || name == "token_types.weight" ||
                            (name == "token_embd.weight" && (c.encoder || !c.tied_embeddings));
        if (!lookup) n += static_cast<double>(shape[0]) * static_cast<double>(shape[1]);
    }
    return n;
}

TokenFlops token_flops(const ModelConfig& c, int64_t seq_len) {
    TokenFlops f;
    f.dense = 2.0 * matmul_params(c);
    const int64_t T = seq_len > 0 ? seq_len : c.n_ctx;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const int64_t w = c.window_of(l), keys = w > 0 ? std::min(T, w) : T;
        f.attention += 4.0 * static_cast<double>(c.q_dim()) * static_cast<double>(keys);  // QKᵀ: 2·d·keys, A·V: 2·d·keys
    }
    return f;
}

double train_flops_per_token(const ModelConfig& c, int64_t seq_len, double lora_params) {
    const TokenFlops f = token_flops(c, seq_len);
    if (lora_params < 0) return 3.0 * f.forward();
    // forward 2N, input gradients 2N, no weight gradients of the frozen matrices; the adapters train fully
    return 2.0 * f.dense + 6.0 * lora_params + 3.0 * f.attention;
}

const std::vector<Gpu>& gpus() {
    // Peaks: dense fp16/bf16 tensor-core throughput, without structured sparsity, from NVIDIA's datasheets (V100 SXM2,
    // A100 SXM4, H100 SXM5, H200 SXM); power: the boards' TDP. Prices are round on-demand figures, assumptions only;
    // V100's $1.50 is the figure of Lambda's GPT-3 estimate (Chuan Li, "OpenAI's GPT-3 Language Model: A Technical
    // Overview", 2020: 355 GPU-years, $4.6M).
    static const std::vector<Gpu> g = {
        {"v100", 125, 300, 1.50, "NVIDIA V100 SXM2 datasheet: 125 TFLOPS fp16 tensor, 300 W"},
        {"a100", 312, 400, 1.80, "NVIDIA A100 SXM4 datasheet: 312 TFLOPS bf16 dense, 400 W"},
        {"h100", 989, 700, 2.50, "NVIDIA H100 SXM5 datasheet: 989 TFLOPS bf16 dense (1,979 with sparsity), 700 W"},
        {"h200", 989, 700, 3.50, "NVIDIA H200 SXM datasheet: 989 TFLOPS bf16 dense (1,979 with sparsity), 700 W"},
    };
    return g;
}

const Gpu& gpu(const std::string& name) {
    std::string known;
    for (const Gpu& g : gpus()) {
        if (g.name == name) return g;
        known += (known.empty() ? "" : ", ") + g.name;
    }
    throw_bad_input("unknown GPU '%s' (known: %s; --gpu-peak and --gpu-power describe another)", name.c_str(), known.c_str());
}

Estimate estimate(const ModelConfig& c, const Plan& p) {
    if (!(p.tokens > 0)) throw_bad_input("--train-tokens must be a positive number of tokens");
    if (!(p.mfu > 0 && p.mfu <= 1)) throw_bad_input("--mfu must be in (0, 1], not %g", p.mfu);
    if (!(p.gpu.peak_tflops > 0) || !(p.gpu.power_w > 0) || !(p.gpu.price_per_hour >= 0) || !(p.pue >= 1) || !(p.carbon_g_per_kwh >= 0) || p.n_gpus < 1)
        throw_bad_input("the GPU's peak and power must be positive, the price and carbon intensity not negative, the PUE at least 1 and --gpus at least 1");
    Estimate e;
    e.n_matmul = matmul_params(c);
    e.n_params = static_cast<double>(c.n_params());
    const TokenFlops f = token_flops(c, p.seq_len);
    e.dense = 3.0 * f.dense * p.tokens;        // 6·N·D
    e.attention = 3.0 * f.attention * p.tokens;  // 12·L·d_attn·T·D
    e.total = p.dense_only ? e.dense : e.dense + e.attention;
    e.pf_days = e.total / (1e15 * 86400.0);
    e.achieved_flops = p.gpu.peak_tflops * 1e12 * p.mfu;
    e.gpu_hours = e.total / e.achieved_flops / 3600.0;
    e.wall_hours = e.gpu_hours / static_cast<double>(p.n_gpus);
    e.cost = e.gpu_hours * p.gpu.price_per_hour;
    e.energy_mwh = e.gpu_hours * p.gpu.power_w * p.pue / 1e6;      // W·h → MWh
    e.co2_tonnes = e.energy_mwh * 1000.0 * p.carbon_g_per_kwh / 1e6;  // kWh · g/kWh → t
    return e;
}

}  // namespace llmforge::compute
