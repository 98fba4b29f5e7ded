// Internal: an architecture family — its block description, how its files name things, and its presets.
//
// One family is one file, src/model/arch/<family>.cpp, defining `const Family& family_<family>()` (CMake lists the
// folder and registers every file in it; nothing else changes to add one). The family:
//  - sets the block description of ModelConfig (norm kind, positions, biases, MLP kind, ...) — describe();
//  - reads and writes its Hugging Face config.json (from_hf / to_hf) through HfConfig, which refuses every field that
//    changes the mathematics unless the family read it;
//  - reads and writes its GGUF metadata through GgufKeys, which refuses every key of the family's namespace the family
//    did not read (unless it holds the neutral value);
//  - maps its tensors' Hugging Face names to llama.cpp's GGUF names and back;
//  - lists its presets (published sizes, with their sources).
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmforge/gguf_metadata.h"
#include "llmforge/model.h"

namespace llmforge::arch {

// A config.json being read: every access marks the field as read. check_unread() then refuses the fields known to
// change what a model computes (rope_scaling, sliding_window, attention_bias, head_dim, ...) that the family did not
// read, unless they hold their neutral value — a field is implemented or refused, never ignored.
class HfConfig {
public:
    HfConfig(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {}
    bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
    bool present(const char* key) const { return j_.contains(key); }  // even if null
    int64_t integer(const char* key, int64_t def = -1);  // def < 0: required
    double number(const char* key, double def);
    bool boolean(const char* key, bool def);
    std::string string(const char* key, const std::string& def);
    const nlohmann::json& raw(const char* key);  // marks it read; null when absent
    [[noreturn]] void refuse(const char* key, const char* why) const;
    void check_unread(const ModelConfig& c) const;
    const std::string& path() const { return path_; }

private:
    const nlohmann::json& j_;
    std::string path_;
    std::set<std::string> read_;
};

// The GGUF metadata of a family's namespace ("<arch>.…") being read: every access marks the key as read, and
// check_unread() refuses the other keys of the namespace unless they hold a neutral value (rope scaling "none", no
// experts, causal attention, ...): they would change the mathematics (llama.cpp's llama-arch.cpp lists the keys).
class GgufKeys {
public:
    GgufKeys(const gguf::Metadata& meta, std::string arch, std::string path) : meta_(meta), arch_(std::move(arch)), path_(std::move(path)) {}
    int64_t integer(const std::string& key, int64_t def = -1);  // key without "<arch>."; def < 0: required
    double number(const std::string& key, double def);
    std::string string(const std::string& key, const std::string& def);
    bool boolean(const std::string& key, bool def);
    [[noreturn]] void refuse(const std::string& key) const;  // "metadata KEY = VALUE changes the model's mathematics …"
    bool has(const std::string& key) const { return meta_.find(arch_ + "." + key) != nullptr; }
    void check_unread(const ModelConfig& c) const;
    const gguf::Metadata& meta() const { return meta_; }
    const std::string& path() const { return path_; }

private:
    const gguf::Metadata& meta_;
    std::string arch_, path_;
    std::set<std::string> read_;
};

class Family {
public:
    virtual ~Family() = default;
    virtual const char* name() const = 0;  // ModelConfig::arch; GGUF general.architecture unless gguf_arch() says otherwise
    // The GGUF general.architecture and key namespace llama.cpp writes this family under (Mistral: "llama").
    virtual const char* gguf_arch() const { return name(); }
    // A family sharing another's GGUF name recognises its files by their metadata (Mistral: a sliding window).
    virtual bool claims_gguf(const gguf::Metadata& /*meta*/) const { return false; }
    // Does config.json's model_type (or architectures[0]) name this family?
    virtual bool reads_hf_type(const std::string& type) const = 0;
    // The block description every model of the family shares, sizes zero.
    virtual ModelConfig describe() const = 0;
    // config.json → sizes and description (start from describe()).
    virtual void from_hf(HfConfig& j, ModelConfig& c) const = 0;
    virtual nlohmann::json to_hf(const ModelConfig& c) const = 0;
    // GGUF metadata → sizes and description (the default reads llama.cpp's common keys: read_common_gguf).
    virtual void from_gguf(GgufKeys& k, ModelConfig& c) const;
    virtual void to_gguf(const ModelConfig& c, gguf::Metadata& meta) const;
    // How llama.cpp's converter lays out Wq/Wk rows in GGUF for this family (it permutes LLaMA's to interleaved pairs).
    virtual RopeStyle gguf_rope_style() const { return RopeStyle::Interleaved; }
    // Tensor names: GGUF → Hugging Face ("" if the family has none), and back ("" to skip, "?" + name if unknown).
    // transpose: the Hugging Face checkpoint stores the matrix as [in, out] (GPT-2's Conv1D).
    virtual std::string hf_tensor_name(const std::string& gguf_name, bool* transpose) const = 0;
    virtual std::string gguf_tensor_name(const std::string& hf_name, bool* transpose) const = 0;
    // What llama.cpp's converter adds to a tensor on its way from Hugging Face to GGUF (Gemma's norms: 1, its RMSNorm
    // multiplying by 1 + w); llmforge computes with the GGUF values.
    virtual float hf_tensor_offset(const std::string& /*gguf_name*/) const { return 0.0f; }
    virtual std::vector<ModelConfig> presets() const = 0;
};

// The families whose Hugging Face checkpoints follow LlamaForCausalLM's conventions (llama, qwen2, qwen3): the same
// config.json field names and the same tensor names (model.layers.N.self_attn.q_proj, mlp.gate_proj, ...).
class LlamaLineage : public Family {
public:
    std::string hf_tensor_name(const std::string& gguf_name, bool* transpose) const override;
    std::string gguf_tensor_name(const std::string& hf_name, bool* transpose) const override;

protected:
    // hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
    // max_position_embeddings (default_ctx when absent), vocab_size, rms_norm_eps and rope_theta (describe()'s when
    // absent), tie_word_embeddings (false); hidden_act must be SiLU.
    static void read_lineage_fields(HfConfig& j, ModelConfig& c, int64_t default_ctx);
    // head_dim: kept as n_head_dim where it is not hidden_size / num_attention_heads (Qwen 3, Mistral Nemo).
    static void read_head_dim(HfConfig& j, ModelConfig& c);
    // The same fields written back, with model_type, architectures and rope_scaling.
    static nlohmann::json lineage_fields(const ModelConfig& c, const char* model_type, const char* architecture);
    // use_sliding_window / sliding_window / max_window_layers as Qwen's configs carry them: an enabled window shorter
    // than the context is refused (sliding windows are not implemented).
    static void read_qwen_window(HfConfig& j, const ModelConfig& c);
};

// The family of this name (throws a bad-input Error naming the supported ones; `where` prefixes the message).
const Family& family(const std::string& name, const std::string& where = "");
// The family of a GGUF whose general.architecture is gguf_arch: the one of that name, unless another family written
// under the same name claims the file (claims_gguf).
const Family& family_for_gguf(const std::string& gguf_arch, const gguf::Metadata& meta, const std::string& where = "");
// The family whose config.json model_type this is, or null.
const Family* family_for_hf_type(const std::string& type);
const std::vector<const Family*>& families();

// llama.cpp's keys shared by every family (context_length, embedding_length, block_count, head counts, the norm's
// epsilon, RoPE's base and dimensions where the description uses RoPE), read and written.
void read_common_gguf(GgufKeys& k, ModelConfig& c);
void write_common_gguf(const ModelConfig& c, gguf::Metadata& meta);

// Encoders (bert, nomic-bert): llama.cpp's keys for them — attention.causal (false; true is refused), pooling_type (0
// none … 4 rank; `dflt` when absent), tokenizer.ggml.token_type_count — read and written.
void read_encoder_gguf(GgufKeys& k, ModelConfig& c, Pooling dflt);
void write_encoder_gguf(const ModelConfig& c, gguf::Metadata& meta);
// Tensor names by tables of (GGUF name, Hugging Face name) without suffixes: whole-model ones, and per-layer ones under
// "blk.N." in GGUF and hf_layers + "N." in Hugging Face ("encoder.layer."). GGUF → HF: "" when unknown; HF → GGUF: ""
// when unknown (the caller decides).
using NameTable = std::vector<std::pair<const char*, const char*>>;
std::string hf_name_by_table(const std::string& gguf_name, const NameTable& top, const NameTable& layers, const std::string& hf_layers);
std::string gguf_name_by_table(const std::string& hf_name, const NameTable& top, const NameTable& layers, const std::string& hf_layers);

// Hugging Face names of the LLaMA lineage (model.layers.N.self_attn.q_proj, mlp.gate_proj, ...), shared by the
// families that inherit them.
std::string llama_style_hf_name(const std::string& gguf_name);
// A tensor name split into its base and its suffix: "blk.0.attn_q.weight" → ("blk.0.attn_q", ".weight"); the
// suffix is "" when it is neither ".weight" nor ".bias".
std::pair<std::string, std::string> split_suffix(const std::string& name);
std::string llama_style_gguf_name(const std::string& hf_name);

// config.json's rope_scaling as transformers reads it for every RoPE model: linear, Llama 3's ("llama3") and YaRN
// ("yarn": factor, original_max_position_embeddings, beta_fast, beta_slow, attention_factor or DeepSeek's mscale /
// mscale_all_dim); other types are refused. Read it after the head width (Llama 3's divisors are per pair).
void read_rope_scaling(HfConfig& j, ModelConfig& c);
// The same, written into a config.json (nothing where the model has no scaling).
void write_rope_scaling(const ModelConfig& c, nlohmann::json& j);

// A preset from the family's description and sizes.
ModelConfig sized(const Family& f, const char* name, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab);

}  // namespace llmforge::arch
