// The architecture families: presets against the published sizes, every config.json field that changes the
// mathematics implemented or refused, and an unknown architecture named with the supported ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llmforge/error.h"
#include "llmforge/model.h"
#include "llmforge/transformer.h"
#include "test_util.h"

using namespace llmforge;

// Parameter counts published with the checkpoints (model cards and technical reports; tied embeddings counted once),
// as printed there: a preset passes within 0.5 % of the figure, or when it rounds to the figure at the precision printed
// (Qwen2.5-0.5B has 494,032,768 parameters, published as "0.49B").
TEST(Families, PresetsMatchPublishedSizes) {
    const std::pair<const char*, const char*> published[] = {
        // billions, as the model cards print them
        {"qwen2.5-0.5b", "0.49"}, {"qwen2.5-7b", "7.62"}, {"llama3.1-8b", "8.03"}, {"llama3.2-1b", "1.24"}, {"llama3.2-3b", "3.21"},
        {"qwen3-0.6b", "0.60"}, {"qwen3-8b", "8.19"},
    };
    for (const auto& [name, figure] : published) {
        const double got = static_cast<double>(preset(name).n_params()) / 1e9, n = std::stod(figure);
        const std::string decimals = std::string(figure).substr(std::string(figure).find('.') + 1);
        char rounded[32];
        std::snprintf(rounded, sizeof rounded, "%.*f", static_cast<int>(decimals.size()), got);
        EXPECT_TRUE(std::abs(got - n) / n <= 0.005 || rounded == std::string(figure))
            << name << ": " << got << "B parameters, published " << figure << "B";
    }
}

namespace {
// What a config says about the mathematics, to tell whether a field changed it.
std::string describe(const ModelConfig& c) {
    return nlohmann::json{{"arch", c.arch}, {"norm", static_cast<int>(c.norm)}, {"eps", c.norm_eps}, {"learned", c.learned_positions},
                          {"theta", c.rope_theta}, {"rope_dim", c.n_rot()}, {"fused", c.fused_qkv}, {"qkv_bias", c.qkv_bias},
                          {"out_bias", c.out_bias}, {"mlp", static_cast<int>(c.mlp)}, {"mlp_bias", c.mlp_bias}, {"tied", c.tied_embeddings},
                          {"head_dim", c.head_dim()}, {"qk_norm", c.qk_norm}, {"rope_scaling", static_cast<int>(c.rope_scaling)}, {"rope_scale", c.rope_scale}, {"rope_factors", c.rope_freq_factors},
                          {"params", c.n_params()}}
        .dump();
}
}  // namespace

// For every family, each known config.json field with a value that would change what the model computes: either the
// config is read and its description changed (the field is implemented), or it is refused with a bad-input error
// naming the field. Reading it unchanged — ignoring the field — fails the test.
TEST(Families, EveryMathematicalConfigFieldIsImplementedOrRefused) {
    const char* fields[][2] = {
        {"rope_scaling", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64})"},
        {"rope_scaling", R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})"},
        {"rope_scaling", R"({"type": "linear", "factor": 2.0})"},
        {"sliding_window", "16, \"use_sliding_window\": true"},
        {"attention_bias", "true"},
        {"mlp_bias", "true"},
        {"hidden_act", "\"gelu\""},
        {"activation_function", "\"relu\""},
        {"head_dim", "4"},
        {"partial_rotary_factor", "0.5"},
        {"rotary_pct", "0.5"},
        {"num_local_experts", "8"},
        {"num_experts", "8"},
        {"attn_logit_softcapping", "50.0"},
        {"final_logit_softcapping", "30.0"},
        {"query_pre_attn_scalar", "256"},
        {"qk_layernorm", "true"},
        {"use_qk_norm", "true"},
        {"embedding_multiplier", "12.0"},
        {"logits_scaling", "8.0"},
        {"residual_multiplier", "0.22"},
        {"attention_multiplier", "0.015"},
        {"layer_types", R"(["sliding_attention", "full_attention"])"},
        {"use_parallel_residual", "true"},
        {"alibi", "true"},
        {"scale_attn_by_inverse_layer_idx", "true"},
        {"scale_attn_weights", "false"},
        {"add_cross_attention", "true"},
        {"is_encoder_decoder", "true"},
    };
    for (const std::string& fam : family_names()) {
        std::string tiny;
        for (const std::string& p : preset_names())
            if (p.size() > 5 && p.compare(p.size() - 5, 5, "-tiny") == 0 && preset(p).arch == fam) tiny = p;
        ASSERT_FALSE(tiny.empty()) << "family " << fam << " has no -tiny preset";
        const std::string dir = test::tmp_path("fields-" + fam);
        std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
        save_model(init_random(preset(tiny), DType::F32, 1), dir + "/");
        const std::string cfg = test::read_file(dir + "/config.json");
        const std::string base = describe(load_model(dir).config);
        for (const auto& f : fields) {
            const std::string text = cfg.substr(0, cfg.rfind('}')) + ", \"" + f[0] + "\": " + f[1] + "}\n";
            try {
                const ModelConfig c = config_from_hf_json(text, dir + "/config.json");
                EXPECT_NE(describe(c), base) << fam << ": config.json \"" << f[0] << "\": " << f[1] << " was ignored";
            } catch (const Error& e) {
                EXPECT_EQ(e.kind(), ErrorKind::BadInput);
                EXPECT_NE(std::string(e.what()).find(std::string("\"") + f[0] + "\""), std::string::npos) << fam << ": " << e.what();
            }
        }
    }
}

TEST(Families, UnknownArchitectureNamesTheSupportedOnes) {
    std::string supported;
    for (const std::string& f : family_names()) supported += (supported.empty() ? "" : ", ") + f;
    try {
        (void)config_from_hf_json(R"({"model_type": "falcon", "hidden_size": 64})", "config.json");
        ADD_FAILURE() << "a falcon config.json was read";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        EXPECT_NE(std::string(e.what()).find("'falcon'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("supported: " + supported), std::string::npos) << e.what();
    }
    gguf::Metadata meta;
    meta.set("general.architecture", gguf::Value::str("mamba"));
    try {
        (void)config_from_gguf(meta, "m.gguf");
        ADD_FAILURE() << "a mamba GGUF was read";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown architecture 'mamba' (supported: " + supported + ")"), std::string::npos) << e.what();
    }
}

// QK-norm, checked by hand: each head's query and key are RMS-normalised before the scores, so scaling W_q and W_k
// by any factor leaves the logits as they were (up to ε in the root) — in a Qwen 3 model, not in a LLaMA one, where
// the same scaling sharpens every attention distribution.
TEST(Families, QkNormMakesAttentionBlindToTheScaleOfQueriesAndKeys) {
    ThreadPool pool(2);
    const std::vector<int32_t> tokens = {1, 17, 305, 42, 99, 7, 256, 3};
    auto logits_with_qk_scaled = [&](const std::string& name, float s) {
        Model m = init_random(preset(name), DType::F32, 9);
        for (Tensor& t : m.tensors)
            if (t.name.find(".attn_q.weight") != std::string::npos || t.name.find(".attn_k.weight") != std::string::npos) {
                float* w = static_cast<float*>(const_cast<void*>(t.data));
                for (int64_t i = 0; i < t.numel(); ++i) w[i] *= s;
            }
        Transformer tf(m, pool, 64, 64, DType::F32);
        return tf.eval(tokens, true);
    };
    auto max_rel = [](const std::vector<float>& a, const std::vector<float>& b) {
        double d = 0, m = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
            m = std::max(m, std::abs(static_cast<double>(b[i])));
        }
        return d / m;
    };
    const std::vector<float> q1 = logits_with_qk_scaled("qwen3-tiny", 1.0f), q7 = logits_with_qk_scaled("qwen3-tiny", 7.0f);
    // ε = 1e-6 against mean(q²) ≈ 0.03 here: the roots differ by ~1e-5 relative
    EXPECT_LT(max_rel(q7, q1), 1e-4) << "Qwen 3: scaling W_q and W_k changed the logits";
    const std::vector<float> l1 = logits_with_qk_scaled("llama-tiny", 1.0f), l7 = logits_with_qk_scaled("llama-tiny", 7.0f);
    EXPECT_GT(max_rel(l7, l1), 1e-3) << "LLaMA: scaling W_q and W_k by 7 should sharpen attention";
}
