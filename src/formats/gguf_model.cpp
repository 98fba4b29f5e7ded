// GGUF ↔ Model.
#include "formats/formats.h"

#include <cstring>

#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "model/family.h"

namespace llmforge::formats {

Model load_gguf(const std::string& path, const LoadOptions& opts) {
    gguf::File f = gguf::read(path, opts.use_mmap);
    Model m;
    m.path = path;
    m.format = "gguf";
    m.config = config_from_gguf(f.meta, f.tensors, path);
    for (Tensor& t : f.tensors) {
        (opts.use_mmap ? m.mapped_bytes : m.owned_bytes) += t.nbytes();
        m.add(std::move(t));
    }
    m.storage.push_back(f.mapping);
    if (opts.use_mmap && f.mapping) m.mapped_files.emplace_back(f.mapping->data(), f.mapping->size());
    if (f.meta.find("tokenizer.ggml.model")) m.vocab = Vocab::from_gguf(f.meta, path);
    if (m.vocab && m.vocab->size() != m.config.n_vocab)
        throw_bad_input("'%s': the tokenizer has %d tokens but the model's vocabulary has %lld", path.c_str(), m.vocab->size(), static_cast<long long>(m.config.n_vocab));
    for (const auto& [k, v] : f.meta.kv)
        if (k.rfind("general.", 0) == 0 && k != "general.architecture" && k != "general.alignment" && k != "general.file_type") m.meta.set(k, v);
    return m;
}

std::vector<Tensor> gguf_image(const Model& m, DType dtype, gguf::Metadata& meta, Model& tmp) {
    meta = m.meta;
    config_to_gguf(m.config, meta);
    if (m.vocab) m.vocab->to_gguf(meta);
    std::vector<Tensor> out;
    const RopeStyle file_style = gguf_rope_style(m.config);
    const bool permute = m.config.uses_rope() && m.config.rope_style != file_style;
    for (const auto& [name, shape] : expected_tensors(m.config)) {
        const Tensor& t = m.get(name);
        Tensor w = t;
        // GGUF's llama layout pairs RoPE dimensions interleaved: reorder Wq/Wk rows taken from a Hugging Face model.
        const bool is_q = name.find(".attn_q.") != std::string::npos, is_k = name.find(".attn_k.") != std::string::npos;
        if (permute && (is_q || is_k)) {
            w = tmp.own(name, t.dtype, t.shape, permute_rope_rows(t, is_q ? m.config.n_head : m.config.n_head_kv, file_style == RopeStyle::Half));
        }
        // Norms and biases stay f32 (as llama.cpp's converters write them); matrices take the requested type.
        const DType want = stored_type(name, w.shape, dtype == DType::Unknown ? w.dtype : dtype);
        if (w.dtype != want) w = tmp.own(name, want, w.shape, convert_bytes(w, want));
        out.push_back(w);
    }
    // Llama 3's RoPE divisors, as llama.cpp's converter writes them
    if (!m.config.rope_freq_factors.empty()) {
        const std::vector<float>& f = m.config.rope_freq_factors;
        std::vector<uint8_t> bytes(f.size() * sizeof(float));
        std::memcpy(bytes.data(), f.data(), bytes.size());
        out.push_back(tmp.own("rope_freqs.weight", DType::F32, {static_cast<int64_t>(f.size())}, std::move(bytes)));
    }
    // a classifier head (a reward model's cls.output.*, llama.cpp's name for it) travels with the model, in f32
    for (const Tensor& t : m.tensors)
        if (t.name.rfind("cls.", 0) == 0) out.push_back(t.dtype == DType::F32 ? t : tmp.own(t.name, DType::F32, t.shape, convert_bytes(t, DType::F32)));
    // general.file_type as llama.cpp numbers it (llama_ftype): the type of most matrices.
    size_t n16 = 0, nbf = 0, n2d = 0;
    for (const Tensor& t : out)
        if (t.shape.size() == 2) { ++n2d; n16 += t.dtype == DType::F16; nbf += t.dtype == DType::BF16; }
    meta.set("general.file_type", gguf::Value::u32(n16 * 2 > n2d ? 1u : nbf * 2 > n2d ? 32u : 0u));
    return out;
}

void save_gguf(const Model& m, const std::string& path, DType dtype) {
    gguf::Metadata meta;
    Model tmp;  // holds converted copies
    const std::vector<Tensor> out = gguf_image(m, dtype, meta, tmp);
    gguf::write(path, meta, out);
}

// LoRA adapters, as llama.cpp stores them: general.type = "adapter", adapter.type = "lora", adapter.lora.alpha, and for
// each adapted weight W [out, in] the tensors "<W>.lora_a" [rank, in] and "<W>.lora_b" [out, rank]. GGUF's LLaMA
// layout pairs RoPE dimensions interleaved, so for attn_q/attn_k the rows of lora_b are reordered like W's rows.
namespace {
bool rope_rows(const std::string& name, const ModelConfig& c, int64_t* heads) {
    if (!c.uses_rope()) return false;
    if (name.find(".attn_q.weight.lora_b") != std::string::npos) { *heads = c.n_head; return true; }
    if (name.find(".attn_k.weight.lora_b") != std::string::npos) { *heads = c.n_head_kv; return true; }
    return false;
}
}  // namespace

}  // namespace llmforge::formats

namespace llmforge {

void save_lora_adapter(const Model& adapter, const std::string& path) {
    gguf::Metadata meta = adapter.meta;
    config_to_gguf(adapter.config, meta);
    meta.set("general.type", gguf::Value::str("adapter"));
    meta.set("adapter.type", gguf::Value::str("lora"));
    if (!meta.find("adapter.lora.alpha")) throw_runtime("save_lora_adapter: adapter.lora.alpha is not set");
    Model tmp;
    std::vector<Tensor> out;
    const RopeStyle file_style = gguf_rope_style(adapter.config);
    const bool permute = adapter.config.uses_rope() && adapter.config.rope_style != file_style;
    for (const Tensor& t : adapter.tensors) {
        Tensor w = t;
        int64_t heads = 0;
        if (permute && formats::rope_rows(t.name, adapter.config, &heads))
            w = tmp.own(t.name, t.dtype, t.shape, formats::permute_rope_rows(t, heads, file_style == RopeStyle::Half));
        out.push_back(w);
    }
    gguf::write(path, meta, out);
}

Model load_lora_adapter(const std::string& path, const ModelConfig& base) {
    if (!file_exists(path)) throw_bad_input("LoRA adapter '%s' does not exist", path.c_str());
    gguf::File f = gguf::read(path, true);
    if (f.meta.get_string("general.type", "") != "adapter" || f.meta.get_string("adapter.type", "") != "lora")
        throw_bad_input("'%s' is not a LoRA adapter (general.type = adapter, adapter.type = lora)", path.c_str());
    const std::string adapted = f.meta.get_string("general.architecture", "");
    const std::string base_arch = arch::family(base.arch).gguf_arch();
    if (!adapted.empty() && adapted != base_arch)
        throw_bad_input("'%s' adapts a %s model, not %s", path.c_str(), adapted.c_str(), base_arch.c_str());
    Model m;
    m.path = path;
    m.format = "gguf";
    m.config = base;
    const gguf::Value* alpha = f.meta.find("adapter.lora.alpha");
    if (!alpha) throw_bad_input("'%s' has no adapter.lora.alpha", path.c_str());
    m.meta.set("adapter.lora.alpha", *alpha);
    m.storage.push_back(f.mapping);
    const bool permute = base.uses_rope() && base.rope_style != gguf_rope_style(base);
    for (Tensor& t : f.tensors) {
        const bool a = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_a") == 0;
        const bool b = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_b") == 0;
        if (t.name.rfind("cls.", 0) == 0) {  // a reward/value head trained beside the adapters
            m.add(std::move(t));
            continue;
        }
        if (!a && !b) throw_bad_input("'%s': tensor '%s' is not a LoRA tensor (.lora_a / .lora_b)", path.c_str(), t.name.c_str());
        if (t.shape.size() != 2) throw_bad_input("'%s': '%s' must be 2-D", path.c_str(), t.name.c_str());
        int64_t heads = 0;
        if (permute && formats::rope_rows(t.name, base, &heads)) {
            m.add(m.own(t.name, t.dtype, t.shape, formats::permute_rope_rows(t, heads, base.rope_style == RopeStyle::Half)));
            continue;
        }
        m.add(std::move(t));
    }
    if (m.tensors.empty()) throw_bad_input("'%s' holds no LoRA tensors", path.c_str());
    return m;
}

}  // namespace llmforge
