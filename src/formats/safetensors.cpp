// Hugging Face safetensors (https://huggingface.co/docs/safetensors): u64 header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the tensor bytes.
// A model is a directory (or one .safetensors file) with config.json beside it; tensors carry Hugging Face names.
#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include "formats/formats.h"
#include "llmforge/bpe.h"
#include "llmforge/chat.h"
#include "llmforge/error.h"
#include "llmforge/mmap_file.h"

using json = nlohmann::json;

namespace llmforge::formats {

namespace {

std::string dir_of(const std::string& p) {
    if (is_directory(p)) return p;
    const size_t s = p.rfind('/');
    return s == std::string::npos ? "." : p.substr(0, s);
}

DType st_dtype(const std::string& s) {
    if (s == "F32") return DType::F32;
    if (s == "F16") return DType::F16;
    if (s == "BF16") return DType::BF16;
    return DType::Unknown;
}
const char* st_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        default: return nullptr;
    }
}

// Hugging Face tensor name → GGUF name. `transpose`: GPT-2's Conv1D stores weights as [in, out].
// `permute`: LLaMA's q/k rows (Hugging Face rotate_half layout). Returns "" for tensors to ignore.
std::string to_gguf_name(Arch arch, std::string n, bool* transpose) {
    *transpose = false;
    if (arch == Arch::GPT2) {
        if (n.rfind("transformer.", 0) == 0) n = n.substr(12);
        if (n == "wte.weight") return "token_embd.weight";
        if (n == "wpe.weight") return "position_embd.weight";
        if (n == "ln_f.weight") return "output_norm.weight";
        if (n == "ln_f.bias") return "output_norm.bias";
        if (n == "lm_head.weight") return "output.weight";
        if (n.rfind("h.", 0) == 0) {
            const size_t dot = n.find('.', 2);
            const std::string l = n.substr(2, dot - 2), rest = n.substr(dot + 1);
            const std::string p = "blk." + l + ".";
            static const std::pair<const char*, const char*> map[] = {
                {"ln_1.", "attn_norm."}, {"attn.c_attn.", "attn_qkv."}, {"attn.c_proj.", "attn_output."},
                {"ln_2.", "ffn_norm."}, {"mlp.c_fc.", "ffn_up."}, {"mlp.c_proj.", "ffn_down."}};
            for (auto [hf, gg] : map) {
                const size_t k = std::strlen(hf);
                if (rest.compare(0, k, hf) == 0) {
                    const std::string suffix = rest.substr(k);
                    *transpose = suffix == "weight" && std::strcmp(gg, "attn_norm.") != 0 && std::strcmp(gg, "ffn_norm.") != 0;
                    return p + gg + suffix;
                }
            }
            if (rest == "attn.bias" || rest == "attn.masked_bias") return "";  // causal-mask buffers of old checkpoints
        }
        return "?" + n;
    }
    if (n == "model.embed_tokens.weight") return "token_embd.weight";
    if (n == "model.norm.weight") return "output_norm.weight";
    if (n == "lm_head.weight") return "output.weight";
    if (n.rfind("model.layers.", 0) == 0) {
        const size_t dot = n.find('.', 13);
        const std::string l = n.substr(13, dot - 13), rest = n.substr(dot + 1);
        static const std::pair<const char*, const char*> map[] = {
            {"input_layernorm.weight", "attn_norm.weight"}, {"self_attn.q_proj.weight", "attn_q.weight"},
            {"self_attn.k_proj.weight", "attn_k.weight"}, {"self_attn.v_proj.weight", "attn_v.weight"},
            {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"mlp.gate_proj.weight", "ffn_gate.weight"}, {"mlp.up_proj.weight", "ffn_up.weight"},
            {"mlp.down_proj.weight", "ffn_down.weight"}};
        for (auto [hf, gg] : map)
            if (rest == hf) return "blk." + l + "." + gg;
        if (rest == "self_attn.rotary_emb.inv_freq") return "";
    }
    return "?" + n;
}

// GGUF name → Hugging Face name (inverse of the above).
std::string to_hf_name(Arch arch, const std::string& g, bool* transpose) {
    *transpose = false;
    auto layer_split = [&](std::string& l, std::string& rest) {
        const size_t dot = g.find('.', 4);
        l = g.substr(4, dot - 4);
        rest = g.substr(dot + 1);
    };
    if (arch == Arch::GPT2) {
        if (g == "token_embd.weight") return "wte.weight";
        if (g == "position_embd.weight") return "wpe.weight";
        if (g == "output_norm.weight") return "ln_f.weight";
        if (g == "output_norm.bias") return "ln_f.bias";
        if (g == "output.weight") return "lm_head.weight";
        std::string l, rest;
        layer_split(l, rest);
        static const std::pair<const char*, const char*> map[] = {
            {"attn_norm.", "ln_1."}, {"attn_qkv.", "attn.c_attn."}, {"attn_output.", "attn.c_proj."},
            {"ffn_norm.", "ln_2."}, {"ffn_up.", "mlp.c_fc."}, {"ffn_down.", "mlp.c_proj."}};
        for (auto [gg, hf] : map) {
            const size_t k = std::strlen(gg);
            if (rest.compare(0, k, gg) == 0) {
                const std::string suffix = rest.substr(k);
                *transpose = suffix == "weight" && std::strcmp(gg, "attn_norm.") != 0 && std::strcmp(gg, "ffn_norm.") != 0;
                return "h." + l + "." + hf + suffix;
            }
        }
        return "";
    }
    if (g == "token_embd.weight") return "model.embed_tokens.weight";
    if (g == "output_norm.weight") return "model.norm.weight";
    if (g == "output.weight") return "lm_head.weight";
    std::string l, rest;
    layer_split(l, rest);
    static const std::pair<const char*, const char*> map[] = {
        {"attn_norm.weight", "input_layernorm.weight"}, {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"}, {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"}, {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"}};
    for (auto [gg, hf] : map)
        if (rest == gg) return "model.layers." + l + "." + hf;
    return "";
}

int64_t jint(const json& j, const char* key, int64_t def, const std::string& path) {
    if (!j.contains(key) || j[key].is_null()) {
        if (def >= 0) return def;
        throw_bad_input("'%s': config.json lacks '%s'", path.c_str(), key);
    }
    if (!j[key].is_number_integer()) throw_bad_input("'%s': config.json '%s' must be an integer", path.c_str(), key);
    return j[key].get<int64_t>();
}

// The config.json fields that change what a GPT-2 or LLaMA-family model computes, beyond those read below, are checked:
// at their neutral values they pass, otherwise the model is refused naming the field — a Llama 3.x rope_scaling or a
// Mistral sliding window would otherwise load and give wrong logits (measured against PyTorch: relative errors of
// 0.18 and 0.5–0.7 where plain LLaMA directories match to 5e-7).
void check_hf_fields(const json& j, const std::string& path, Arch arch, int64_t n_embd, int64_t n_head, int64_t n_ctx) {
    auto refuse = [&](const std::string& field, const json& v, const char* why) {
        throw_bad_input("'%s': config.json \"%s\": %s is not supported yet (%s)", path.c_str(), field.c_str(), v.dump().c_str(), why);
    };
    auto set = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
    if (arch == Arch::Llama) {
        if (set("rope_scaling")) refuse("rope_scaling", j["rope_scaling"], "scaled rotary positions, as Llama 3.x and long-context models use");
        if (set("sliding_window") && j.value("use_sliding_window", true) && j["sliding_window"].is_number_integer() &&
            j["sliding_window"].get<int64_t>() < n_ctx)
            refuse("sliding_window", j["sliding_window"], "attention limited to a window shorter than the context");
        for (const char* k : {"attention_bias", "mlp_bias"})
            if (set(k) && j[k].is_boolean() && j[k].get<bool>()) refuse(k, j[k], "biases in the attention or MLP projections");
        if (set("hidden_act") && j["hidden_act"] != "silu" && j["hidden_act"] != "swish") refuse("hidden_act", j["hidden_act"], "only SiLU gates");
        if (set("head_dim") && n_head > 0 && j["head_dim"].is_number_integer() && j["head_dim"].get<int64_t>() != n_embd / n_head)
            refuse("head_dim", j["head_dim"], "heads narrower or wider than hidden_size / num_attention_heads");
        if (set("partial_rotary_factor") && j["partial_rotary_factor"].is_number() && j["partial_rotary_factor"].get<double>() != 1.0)
            refuse("partial_rotary_factor", j["partial_rotary_factor"], "rotary embedding on part of each head");
        if (set("num_local_experts") && j["num_local_experts"].is_number_integer() && j["num_local_experts"].get<int64_t>() > 0)
            refuse("num_local_experts", j["num_local_experts"], "mixture-of-experts MLPs");
    } else {
        if (set("activation_function") && j["activation_function"] != "gelu_new" && j["activation_function"] != "gelu_pytorch_tanh")
            refuse("activation_function", j["activation_function"], "only GPT-2's tanh GELU");
        if (set("scale_attn_by_inverse_layer_idx") && j["scale_attn_by_inverse_layer_idx"] == true)
            refuse("scale_attn_by_inverse_layer_idx", j["scale_attn_by_inverse_layer_idx"], "attention scaled per layer");
        if (set("scale_attn_weights") && j["scale_attn_weights"] == false) refuse("scale_attn_weights", j["scale_attn_weights"], "attention without 1/√d");
        if (set("add_cross_attention") && j["add_cross_attention"] == true) refuse("add_cross_attention", j["add_cross_attention"], "an encoder-decoder model");
    }
}

ModelConfig config_from_hf(const json& j, const std::string& path) {
    ModelConfig c;
    std::string type = j.value("model_type", "");
    if (type.empty() && j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
        type = j["architectures"][0].get<std::string>();
    if (type == "gpt2" || type == "GPT2LMHeadModel") {
        c.arch = Arch::GPT2;
        c.n_embd = jint(j, "n_embd", -1, path);
        c.n_layer = jint(j, "n_layer", -1, path);
        c.n_head = jint(j, "n_head", -1, path);
        c.n_head_kv = c.n_head;
        c.n_ctx = jint(j, "n_positions", jint(j, "n_ctx", 1024, path), path);
        c.n_ff = jint(j, "n_inner", 4 * c.n_embd, path);
        c.n_vocab = jint(j, "vocab_size", -1, path);
        c.norm_eps = j.value("layer_norm_epsilon", 1e-5f);
        c.tied_embeddings = j.value("tie_word_embeddings", true);
    } else if (type == "llama" || type == "LlamaForCausalLM" || type == "mistral") {
        c.arch = Arch::Llama;
        c.n_embd = jint(j, "hidden_size", -1, path);
        c.n_ff = jint(j, "intermediate_size", -1, path);
        c.n_layer = jint(j, "num_hidden_layers", -1, path);
        c.n_head = jint(j, "num_attention_heads", -1, path);
        c.n_head_kv = jint(j, "num_key_value_heads", c.n_head, path);
        c.n_ctx = jint(j, "max_position_embeddings", 2048, path);
        c.n_vocab = jint(j, "vocab_size", -1, path);
        c.norm_eps = j.value("rms_norm_eps", 1e-6f);
        c.rope_theta = j.value("rope_theta", 10000.0f);
        c.tied_embeddings = j.value("tie_word_embeddings", false);
        c.rope_style = RopeStyle::Half;
    } else {
        throw_bad_input("'%s': unknown architecture '%s' in config.json (supported: llama, gpt2)", path.c_str(), type.c_str());
    }
    check_hf_fields(j, path, c.arch, c.n_embd, c.n_head, c.n_ctx);
    c.name = j.value("_name_or_path", type);
    return c;
}

json config_to_hf(const ModelConfig& c) {
    json j;
    if (c.arch == Arch::GPT2) {
        j = {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_embd", c.n_embd}, {"n_layer", c.n_layer},
             {"n_head", c.n_head}, {"n_positions", c.n_ctx}, {"n_ctx", c.n_ctx}, {"n_inner", c.n_ff}, {"vocab_size", c.n_vocab},
             {"layer_norm_epsilon", c.norm_eps}, {"activation_function", "gelu_new"}, {"tie_word_embeddings", c.tied_embeddings}};
    } else {
        j = {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", c.n_embd},
             {"intermediate_size", c.n_ff}, {"num_hidden_layers", c.n_layer}, {"num_attention_heads", c.n_head},
             {"num_key_value_heads", c.n_head_kv}, {"max_position_embeddings", c.n_ctx}, {"vocab_size", c.n_vocab},
             {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta}, {"hidden_act", "silu"},
             {"tie_word_embeddings", c.tied_embeddings}, {"torch_dtype", "float32"}};
    }
    return j;
}

// Reads one .safetensors file into the model (tensors stay mapped unless they need a transpose).
void read_file(Model& m, const std::string& file, bool use_mmap) {
    auto f = MappedFile::open(file, use_mmap);
    if (f->size() < 8) throw_bad_input("'%s' is truncated: no safetensors header", file.c_str());
    uint64_t hlen;
    std::memcpy(&hlen, f->data(), 8);
    if (hlen > f->size() - 8 || hlen > (uint64_t(100) << 20))
        throw_bad_input("'%s' is truncated or not a safetensors file (header of %llu bytes)", file.c_str(), static_cast<unsigned long long>(hlen));
    json h;
    try {
        h = json::parse(f->data() + 8, f->data() + 8 + hlen);
    } catch (const std::exception& e) {
        throw_bad_input("'%s': the safetensors header is not valid JSON", file.c_str());
    }
    if (!h.is_object()) throw_bad_input("'%s': the safetensors header is not a JSON object", file.c_str());
    const uint64_t base = 8 + hlen, avail = f->size() - base;
    for (auto it = h.begin(); it != h.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        const json& e = it.value();
        if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets") ||
            !e["dtype"].is_string() || !e["shape"].is_array() || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
            throw_bad_input("'%s': tensor '%s' has a malformed header entry", file.c_str(), it.key().c_str());
        bool transpose;
        const std::string name = to_gguf_name(m.config.arch, it.key(), &transpose);
        if (name.empty()) continue;
        if (name[0] == '?') throw_bad_input("'%s': unexpected tensor '%s' for a %s model", file.c_str(), it.key().c_str(), arch_name(m.config.arch));
        Tensor t;
        t.name = name;
        t.dtype = st_dtype(e["dtype"].get<std::string>());
        if (t.dtype == DType::Unknown)
            throw_bad_input("'%s': tensor '%s' has dtype %s, which is not supported (F32, F16, BF16 are)", file.c_str(), it.key().c_str(),
                            e["dtype"].get<std::string>().c_str());
        double numel = 1;
        for (const auto& d : e["shape"]) {
            if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (int64_t(1) << 40))
                throw_bad_input("'%s': tensor '%s' has an absurd dimension", file.c_str(), it.key().c_str());
            t.shape.push_back(d.get<int64_t>());
            numel *= static_cast<double>(t.shape.back());
        }
        if (t.shape.empty() || numel > 9e15) throw_bad_input("'%s': tensor '%s' has an invalid shape", file.c_str(), it.key().c_str());
        const uint64_t b = e["data_offsets"][0].get<uint64_t>(), en = e["data_offsets"][1].get<uint64_t>();
        if (b > en || en > avail)
            throw_bad_input("'%s' is truncated: tensor '%s' data runs past the end of the file", file.c_str(), it.key().c_str());
        if (en - b != t.nbytes())
            throw_bad_input("'%s': tensor '%s' has %llu bytes of data for shape %s", file.c_str(), it.key().c_str(),
                            static_cast<unsigned long long>(en - b), t.shape_str().c_str());
        t.data = f->data() + base + b;
        const bool misaligned = reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) != 0;
        if (transpose && t.shape.size() == 2) {
            std::vector<int64_t> shp = {t.shape[1], t.shape[0]};
            m.add(m.own(name, t.dtype, shp, transpose_bytes(t)));
        } else if (misaligned) {
            std::vector<uint8_t> copy(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes());
            m.add(m.own(name, t.dtype, t.shape, std::move(copy)));
        } else {
            (use_mmap ? m.mapped_bytes : m.owned_bytes) += t.nbytes();
            m.add(std::move(t));
        }
    }
    m.storage.push_back(f);
}

}  // namespace

Model load_safetensors(const std::string& path, const LoadOptions& opts);

}  // namespace llmforge::formats

namespace llmforge {
ModelConfig config_from_hf_json(const std::string& text, const std::string& path) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw_bad_input("'%s' is not valid JSON", path.c_str());
    }
    if (!j.contains("vocab_size")) j["vocab_size"] = 1;
    return formats::config_from_hf(j, path);
}
}  // namespace llmforge

namespace llmforge::formats {

Model load_safetensors(const std::string& path, const LoadOptions& opts) {
    const std::string dir = dir_of(path);
    const std::string cfg_path = dir + "/config.json";
    if (!file_exists(cfg_path)) throw_bad_input("'%s': no config.json next to the safetensors weights", path.c_str());
    json cfg;
    try {
        cfg = json::parse(read_text_file(cfg_path));
    } catch (const json::exception& e) {
        throw_bad_input("'%s' is not valid JSON", cfg_path.c_str());
    }
    Model m;
    m.path = path;
    m.format = "safetensors";
    m.config = config_from_hf(cfg, cfg_path);
    std::vector<std::string> files;
    if (is_directory(path)) {
        if (DIR* d = opendir(path.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(path + "/" + n);
            }
            closedir(d);
        }
        std::sort(files.begin(), files.end());
        if (files.empty()) throw_bad_input("'%s' holds no .safetensors files", path.c_str());
    } else {
        files.push_back(path);
    }
    for (const auto& f : files) read_file(m, f, opts.use_mmap);
    if (m.config.tied_embeddings && m.find("output.weight")) m.config.tied_embeddings = false;
    if (!m.config.tied_embeddings && !m.find("output.weight") && m.config.arch == Arch::GPT2) m.config.tied_embeddings = true;
    m.meta.set("general.name", gguf::Value::str(m.config.name));
    // The tokenizer: --tokenizer, else the Hugging Face tokenizer.json beside the weights.
    const std::string tj = dir + "/tokenizer.json";
    if (opts.tokenizer_path.empty() && file_exists(tj)) m.vocab = Vocab::load(tj);  // (--tokenizer: load_model attaches it)
    if (m.vocab) {
        if (m.vocab->size() > m.config.n_vocab)
            throw_bad_input("'%s': the tokenizer has %d tokens but the model's vocabulary has %lld", path.c_str(), m.vocab->size(),
                            static_cast<long long>(m.config.n_vocab));
        m.vocab->pad_to(static_cast<int32_t>(m.config.n_vocab));  // HF pads embeddings past the tokenizer (e.g. to a multiple of 64)
        // the chat template, from tokenizer_config.json
        const std::string tc = dir + "/tokenizer_config.json";
        if (file_exists(tc)) m.vocab->chat_template = chat_template_from_tokenizer_config(tc);
    }
    return m;
}

void save_safetensors(const Model& m, const std::string& path, DType dtype) {
    std::string file = path, dir;
    const bool file_mode = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
    // What transformers reads beside the weights: config.json, the tokenizer (tokenizer.json: byte-level BPE or the
    // SentencePiece form, see vocab_hf.cpp) and tokenizer_config.json (special tokens, chat template).
    std::vector<std::pair<std::string, std::string>> side = {{"config.json", config_to_hf(m.config).dump(2) + "\n"}};
    if (m.vocab) {
        side.emplace_back("tokenizer.json", m.vocab->to_hf_json());
        side.emplace_back("tokenizer_config.json", m.vocab->hf_tokenizer_config(m.config.n_ctx));
    }
    if (file_mode) {
        dir = dir_of(path);
        // NAME.safetensors in a folder that may hold other things (the current directory, say): never replace another
        // model's config.json or tokenizer files there
        for (const auto& [name, text] : side) {
            const std::string p = dir + "/" + name;
            if (file_exists(p) && read_text_file(p) != text)
                throw_bad_input("'%s' already exists and belongs to another model: write into a directory of its own instead (e.g. %s/)",
                                p.c_str(), path.substr(0, path.size() - 12).c_str());
        }
    } else {
        dir = path;
        if (!is_directory(dir) && mkdir(dir.c_str(), 0755) != 0) throw_runtime("cannot create directory '%s'", dir.c_str());
        file = dir + "/model.safetensors";
    }
    Model tmp;
    std::vector<std::pair<std::string, Tensor>> out;
    const bool to_half = m.config.arch == Arch::Llama && m.config.rope_style == RopeStyle::Interleaved;
    for (const auto& [name, shape] : expected_tensors(m.config)) {
        Tensor t = m.get(name);
        bool transpose;
        const std::string hf = to_hf_name(m.config.arch, name, &transpose);
        const bool is_q = name.find(".attn_q.") != std::string::npos, is_k = name.find(".attn_k.") != std::string::npos;
        if (to_half && (is_q || is_k)) t = tmp.own(name, t.dtype, t.shape, permute_rope_rows(t, is_q ? m.config.n_head : m.config.n_head_kv, true));
        if (transpose) t = tmp.own(name, t.dtype, {t.shape[1], t.shape[0]}, transpose_bytes(t));
        const DType want = dtype == DType::Unknown ? t.dtype : dtype;
        if (want != t.dtype) t = tmp.own(name, want, t.shape, convert_bytes(t, want));
        out.emplace_back(hf, t);
    }
    json h = json::object();
    uint64_t off = 0;
    for (const auto& [hf, t] : out) {
        h[hf] = {{"dtype", st_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes()}}};
        off += t.nbytes();
    }
    h["__metadata__"] = {{"format", "pt"}};
    std::string hs = h.dump();
    while ((8 + hs.size()) % 8) hs += ' ';
    AtomicWriter w(file);
    const uint64_t hl = hs.size();
    w.write(&hl, 8);
    w.write(hs.data(), hs.size());
    for (const auto& [hf, t] : out) w.write(t.data, t.nbytes());
    w.commit();
    for (const auto& [name, text] : side) {
        AtomicWriter s(dir + "/" + name);
        s.write(text.data(), text.size());
        s.commit();
    }
}

}  // namespace llmforge::formats
