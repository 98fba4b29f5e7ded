// The architecture families: presets against the published sizes, every config.json field that changes the
// mathematics implemented or refused, and an unknown architecture named with the supported ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llmforge/error.h"
#include "llmforge/gguf.h"
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
        {"qwen3-0.6b", "0.60"}, {"qwen3-8b", "8.19"}, {"mistral-7b", "7.24"},
        // Gemma 2 (Hugging Face's model pages: 2.61B, 9.24B, 27.2B; the technical report's table 2 lists the same
        // non-embedding counts, 2,024,517,888 / 8,324,201,984 / 26,047,480,320)
        {"gemma2-2b", "2.61"}, {"gemma2-9b", "9.24"}, {"gemma2-27b", "27.2"},
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
                          {"head_dim", c.head_dim()}, {"qk_norm", c.qk_norm}, {"window", c.sliding_window}, {"rope_scaling", static_cast<int>(c.rope_scaling)}, {"rope_scale", c.rope_scale}, {"rope_factors", c.rope_freq_factors},
                          {"params", c.n_params()}, {"window_pattern", c.sliding_window_pattern}, {"attn_scale", c.attn_scale},
                          {"attn_softcap", c.attn_softcap}, {"final_softcap", c.final_softcap}, {"post_norms", c.post_norms},
                          {"embd_scale", c.embd_scale}}
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
        const nlohmann::json cfg_json = nlohmann::json::parse(cfg);
        const std::string base = describe(load_model(dir).config);
        for (const auto& f : fields) {
            // a field the family's own config.json already holds with this value (Gemma 2's soft-caps) changes nothing
            const nlohmann::json value = nlohmann::json::parse(f[1], nullptr, false);
            if (cfg_json.contains(f[0]) && !value.is_discarded() && cfg_json[f[0]] == value) continue;
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

// Mistral's sliding window through every path that runs it. A model whose window (16) is much shorter than the prompt
// (100 tokens): the logits with a KV cache of every position and with a ring of window + batch − 1 cells agree (bit
// for bit in batch-invariant arithmetic, where neither the chunking nor the cells' order changes a sum); ggml
// arithmetic masks the same keys; decode() of two sequences through a ring gives each the logits of its own prompt;
// and going back in a ring keeps the prefix only while the keys it needs are still there. (The window's values against
// PyTorch: tests/reference/test_torch_parity.py.)
TEST(Families, MistralSlidingWindowAndItsRingCache) {
    ThreadPool pool(2);
    ModelConfig cfg = preset("mistral-tiny");
    cfg.sliding_window = 16;
    const Model m = init_random(cfg, DType::F32, 3);
    std::vector<int32_t> tokens(100);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 11) % 512);
    const int64_t T = static_cast<int64_t>(tokens.size()), V = cfg.n_vocab;
    auto run = [&](int64_t batch, Numerics num, bool* ring = nullptr) {
        Transformer tf(m, pool, 256, batch, DType::F32, 1, num);
        if (ring) *ring = tf.cache().ring();
        return tf.eval(tokens, true);
    };
    bool ring_full = true, ring_small = false;
    const std::vector<float> full = run(512, Numerics::BatchInvariant, &ring_full), small = run(4, Numerics::BatchInvariant, &ring_small);
    EXPECT_FALSE(ring_full);
    EXPECT_TRUE(ring_small);
    EXPECT_EQ(KVCache::cells_for(cfg, 256, 4), 19);
    ASSERT_EQ(full.size(), small.size());
    EXPECT_EQ(full, small) << "a ring of 19 cells changed the logits";
    auto max_abs = [](const std::vector<float>& a, const std::vector<float>& b) {
        double d = 0;
        for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
        return d;
    };
    EXPECT_LT(max_abs(run(4, Numerics::Fast), full), 1e-4);
    EXPECT_LT(max_abs(run(512, Numerics::Ggml), full), 1e-4) << "ggml arithmetic masks other keys";
    // without the window the logits past position 16 are others
    ModelConfig nowin = cfg;
    nowin.sliding_window = 0;
    Model m2 = init_random(nowin, DType::F32, 3);
    Transformer tf2(m2, pool, 256, 512, DType::F32, 1, Numerics::BatchInvariant);
    const std::vector<float> open = tf2.eval(tokens, true);
    EXPECT_EQ(std::vector<float>(open.begin(), open.begin() + 16 * V), std::vector<float>(full.begin(), full.begin() + 16 * V));
    EXPECT_GT(max_abs(open, full), 1e-2);

    // decode(): two sequences, one token each per step, through a ring (batches of 2: 17 cells)
    Transformer dec(m, pool, 256, 2, DType::F32, 2, Numerics::BatchInvariant);
    ASSERT_TRUE(dec.cache().ring());
    const std::vector<int32_t> seqs = {0, 1};
    std::vector<float> step(static_cast<size_t>(2 * V));
    std::vector<int32_t> other(tokens.rbegin(), tokens.rend());
    for (int64_t i = 0; i < T; ++i) {
        const int32_t toks[2] = {tokens[static_cast<size_t>(i)], other[static_cast<size_t>(i)]};
        dec.decode(seqs.data(), toks, 2, step.data());
        ASSERT_TRUE(std::equal(step.begin(), step.begin() + V, full.begin() + i * V)) << "position " << i;
    }
    // going back: a ring of 19 cells after 100 positions holds 81..99; position 98 attends from 83 (kept), 90 from 75 (lost)
    Transformer tr(m, pool, 256, 4, DType::F32, 1, Numerics::BatchInvariant);
    tr.eval(tokens);
    EXPECT_EQ(tr.truncate(98), 98);
    EXPECT_EQ(tr.truncate(90), 0);
    EXPECT_EQ(tr.n_past(), 0);
    const std::vector<float> again = tr.eval(tokens, true);
    EXPECT_EQ(again, full);
}

// Mistral's files: config.json (model_type mistral; sliding_window null: none; absent: transformers' 4096) and GGUF
// as llama.cpp's converter writes it (architecture "llama"), with the window under llama.attention.sliding_window.
TEST(Families, MistralFilesCarryTheWindow) {
    const std::string dir = test::tmp_path("mistral-hf");
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    const Model m = init_random(preset("mistral-tiny"), DType::F32, 1);
    save_model(m, dir + "/");
    const nlohmann::json j = nlohmann::json::parse(test::read_file(dir + "/config.json"));
    EXPECT_EQ(j["model_type"], "mistral");
    EXPECT_EQ(j["sliding_window"], 128);
    EXPECT_EQ(load_model(dir).config.sliding_window, 128);
    auto window_of = [&](const std::string& field) {
        nlohmann::json k = j;
        k.erase("sliding_window");
        std::string text = k.dump();
        if (!field.empty()) text = text.substr(0, text.rfind('}')) + ", \"sliding_window\": " + field + "}";
        return config_from_hf_json(text, "config.json").sliding_window;
    };
    EXPECT_EQ(window_of("null"), 0);
    EXPECT_EQ(window_of(""), 4096);
    EXPECT_EQ(window_of("64"), 64);
    EXPECT_THROW(window_of("\"wide\""), Error);

    const std::string g = test::tmp_path("mistral.gguf");
    save_model(m, g);
    const gguf::File f = gguf::read(g);
    EXPECT_EQ(f.meta.get_string("general.architecture", ""), "llama");
    ASSERT_NE(f.meta.find("llama.attention.sliding_window"), nullptr);
    EXPECT_EQ(f.meta.find("llama.attention.sliding_window")->i, 128);
    const Model back = load_model(g);
    EXPECT_EQ(back.config.arch, "mistral");
    EXPECT_EQ(back.config.sliding_window, 128);
    // without the key (as llama.cpp's converter writes Mistral): a LLaMA model, attending to every position
    gguf::Metadata meta = f.meta;
    meta.erase("llama.attention.sliding_window");
    const ModelConfig plain = config_from_gguf(meta, f.tensors, g);
    EXPECT_EQ(plain.arch, "llama");
    EXPECT_EQ(plain.sliding_window, 0);
}

// Gemma 2's files: config.json and GGUF carry every feature of its block, Hugging Face's norm weights are w where
// llmforge (as llama.cpp's GGUF) computes with 1 + w, and a GGUF without query_pre_attn_scalar gets llama.cpp's factor.
TEST(Families, Gemma2FilesCarryTheirBlock) {
    const ModelConfig c = preset("gemma2-tiny");
    EXPECT_TRUE(c.post_norms && c.embd_scale && c.tied_embeddings);
    EXPECT_EQ(c.mlp, MlpKind::GeGLU);
    EXPECT_EQ(c.window_of(0), 128);  // even layers windowed, odd ones global
    EXPECT_EQ(c.window_of(1), 0);
    EXPECT_EQ(c.window_of(24), 128);
    EXPECT_FLOAT_EQ(c.attention_scale(), 1.0f / std::sqrt(32.0f));
    EXPECT_FLOAT_EQ(preset("gemma2-27b").attention_scale(), 1.0f / 12.0f);  // query_pre_attn_scalar 144

    const Model m = init_random(c, DType::F32, 3);
    const std::string dir = test::tmp_path("gemma2-hf");
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    save_model(m, dir + "/");
    const nlohmann::json j = nlohmann::json::parse(test::read_file(dir + "/config.json"));
    EXPECT_EQ(j["model_type"], "gemma2");
    EXPECT_EQ(j["sliding_window"], 128);
    EXPECT_EQ(j["attn_logit_softcapping"], 50.0);
    EXPECT_EQ(j["final_logit_softcapping"], 30.0);
    EXPECT_EQ(j["query_pre_attn_scalar"], 32.0);
    EXPECT_EQ(j["hidden_activation"], "gelu_pytorch_tanh");
    const Model back = load_model(dir);
    EXPECT_EQ(describe(back.config), describe(c));
    // init_random's norms are 1 (GGUF); Hugging Face's checkpoint holds 0 and reading it gives 1 again
    const Tensor& norm = back.get("blk.0.post_ffw_norm.weight");
    EXPECT_EQ(norm.dtype, DType::F32);
    EXPECT_EQ(static_cast<const float*>(norm.data)[5], 1.0f);
    const std::string st = test::read_file(dir + "/model.safetensors");
    EXPECT_NE(st.find("model.layers.0.pre_feedforward_layernorm.weight"), std::string::npos);
    EXPECT_NE(st.find("model.layers.0.post_attention_layernorm.weight"), std::string::npos);
    EXPECT_EQ(st.find("lm_head"), std::string::npos);

    // config.json: soft-caps null (none), layer_types as newer transformers write them, and refusals
    auto with = [&](const std::string& extra) {
        nlohmann::json k = j;
        const nlohmann::json e = nlohmann::json::parse(extra);
        for (auto it = e.begin(); it != e.end(); ++it) k[it.key()] = it.value();
        return config_from_hf_json(k.dump(), "config.json");
    };
    EXPECT_EQ(with(R"({"attn_logit_softcapping": null})").attn_softcap, 0.0f);
    EXPECT_EQ(with(R"({"final_logit_softcapping": null, "sliding_window": null})").final_softcap, 0.0f);
    nlohmann::json types = nlohmann::json::array();
    for (int l = 0; l < 26; ++l) types.push_back(l % 2 == 0 ? "sliding_attention" : "full_attention");
    EXPECT_EQ(with(nlohmann::json{{"layer_types", types}}.dump()).window_of(2), 128);
    types[0] = "full_attention";
    EXPECT_THROW(with(nlohmann::json{{"layer_types", types}}.dump()), Error);
    EXPECT_THROW(with(R"({"hidden_activation": "gelu"})"), Error);
    EXPECT_THROW(with(R"({"tie_word_embeddings": false})"), Error);
    EXPECT_THROW(with(R"({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})"), Error);
    EXPECT_EQ(with(R"({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}})").rope_scaling, RopeScaling::Yarn);

    // GGUF: llama.cpp's keys; without query_pre_attn_scalar, llama.cpp's factor (1/√head_dim, 27B: 1/√(n_embd/n_head))
    const std::string g = test::tmp_path("gemma2.gguf");
    save_model(m, g);
    const gguf::File f = gguf::read(g);
    EXPECT_EQ(f.meta.get_string("general.architecture", ""), "gemma2");
    ASSERT_NE(f.meta.find("gemma2.attn_logit_softcapping"), nullptr);
    EXPECT_EQ(f.meta.find("gemma2.attn_logit_softcapping")->f, 50.0);
    EXPECT_EQ(f.meta.find("gemma2.attention.sliding_window")->i, 128);
    EXPECT_EQ(f.meta.find("gemma2.attention.query_pre_attn_scalar"), nullptr);  // llama.cpp's rule gives the same
    EXPECT_EQ(describe(load_model(g).config), describe(c));
    ModelConfig other = c;
    other.attn_scale = 0.1f;
    gguf::Metadata meta = f.meta;
    meta.set("gemma2.attention.query_pre_attn_scalar", gguf::Value::f32(100.0f));
    EXPECT_FLOAT_EQ(config_from_gguf(meta, f.tensors, g).attention_scale(), 0.1f);
    meta.set("gemma2.rope.scaling.type", gguf::Value::str("longrope"));
    EXPECT_THROW(config_from_gguf(meta, f.tensors, g), Error);
}
