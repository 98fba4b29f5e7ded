// The compute account: the FLOPs a Transformer costs to train and to run, and what a training run would take on GPUs
// (hours, money, energy, CO₂) under stated, overridable assumptions.
//
// FLOPs are "model FLOPs" as PaLM defines them for model FLOPs utilisation (Chowdhery et al. 2022, "PaLM", Appendix B):
// per token, the forward pass costs 2·N for the N parameters that multiply activations (a multiply and an add each)
// plus 4·d_attn·T per layer for attention's two products QKᵀ and A·V over T keys; the backward pass costs twice the
// forward (gradients of the inputs and of the weights), so training costs 3× the forward:
//     6·N + 12·L·d_attn·T per token.
// Attention is counted over all T keys (no saving for the causal mask), as PaLM and llm.c count it; windowed layers
// over min(T, window). Recomputed activations are not counted (that would be hardware FLOPs, not model FLOPs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llmforge/model.h"

namespace llmforge::compute {

// The parameters that multiply activations: every matrix of the blocks, the output projection (the token embedding
// when the two are tied) and a reranker's head. Not the lookup tables (an untied or encoder's token embedding, learned
// positions, segment embeddings), nor norms and biases (elementwise).
double matmul_params(const ModelConfig& c);

struct TokenFlops {
    double dense = 0;      // 2·N: the matrix products of one token's forward pass
    double attention = 0;  // Σ over layers of 4·d_attn·min(T, window): QKᵀ and A·V
    double forward() const { return dense + attention; }
};
// One token's forward pass in sequences of `seq_len` tokens.
TokenFlops token_flops(const ModelConfig& c, int64_t seq_len);

// One token's training FLOPs (forward + backward). lora_params < 0: full training, 3× the forward = 6·N + 3·attention.
// Under LoRA (lora_params ≥ 0, the adapters' parameter count) the frozen weights get no weight gradients, only input
// gradients: 4·N + 6·lora_params + 3·attention.
double train_flops_per_token(const ModelConfig& c, int64_t seq_len, double lora_params = -1);

// A GPU's datasheet figures: dense 16-bit tensor-core peak (no sparsity), board power, and an assumed rental price.
struct Gpu {
    std::string name;
    double peak_tflops = 0;     // dense fp16/bf16 tensor-core peak
    double power_w = 0;         // board power (TDP)
    double price_per_hour = 0;  // US$ per GPU-hour: an assumption, not a quote
    std::string source;         // where the peak and power come from
};
const std::vector<Gpu>& gpus();            // v100, a100, h100, h200
const Gpu& gpu(const std::string& name);   // bad-input Error naming the known ones

// What a training run would take. Every field has a stated default the caller can override.
struct Plan {
    double tokens = 0;          // training tokens D
    int64_t seq_len = 0;        // 0: the model's context
    Gpu gpu;                    // peak, power and price (overridable field by field)
    double mfu = 0.4;           // achieved / peak: large runs reach 0.3–0.5 (PaLM 540B: 0.462, its Table 3)
    double pue = 1.1;           // data-centre power usage effectiveness
    double carbon_g_per_kwh = 429;  // grid carbon intensity (Patterson et al. 2021 used 429 gCO₂e/kWh for GPT-3)
    int64_t n_gpus = 1;         // only the wall time depends on it
    bool dense_only = false;    // count 6·N·D alone, as the GPT-3 paper's 3.14e23 does (Brown et al. 2020, Appendix D)
};

struct Estimate {
    double n_matmul = 0, n_params = 0;
    double dense = 0, attention = 0, total = 0;  // training FLOPs: 6·N·D, attention's 12·L·d_attn·T·D, their sum (or dense alone)
    double pf_days = 0;                          // total / (10¹⁵ · 86,400)
    double achieved_flops = 0;                   // per GPU: peak · MFU
    double gpu_hours = 0, wall_hours = 0, cost = 0, energy_mwh = 0, co2_tonnes = 0;
};
Estimate estimate(const ModelConfig& c, const Plan& p);

}  // namespace llmforge::compute
