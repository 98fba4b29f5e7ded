// Transformer models: configuration (the block description), presets, and the weights of a loaded model.
//
// A model's configuration says what its Transformer block computes — the norms, the positions, the attention
// projections and their biases, the MLP — as fields and predicates (uses_rope(), gated_mlp(), ...), never as "is it
// LLaMA". Each architecture family (GPT-2, LLaMA, ...) is one file, src/model/arch/<family>.cpp, that sets these fields
// from its Hugging Face config.json and GGUF metadata, names its tensors, and holds its presets:
//  - gpt2:  LayerNorm, learned positions, fused QKV, biases everywhere, GELU MLP, output tied to the token embedding.
//  - llama: RMSNorm, rotary position embedding, grouped-query attention, no biases, SwiGLU MLP.
// Weights are named as in GGUF (token_embd.weight, blk.N.attn_q.weight, ...) whatever file they came from.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llmforge/gguf_metadata.h"
#include "llmforge/tensor.h"
#include "llmforge/tokenizer.h"

namespace llmforge {

class ThreadPool;

// How RoPE pairs the dimensions of a head:
//  Interleaved: (x0,x1), (x2,x3), ...            — Meta's original code, llama2.c and GGUF's "llama" layout
//  Half:        (x0,x_{d/2}), (x1,x_{d/2+1}), ... — Hugging Face's rotate_half layout
// Converting between them permutes the rows of Wq and Wk (see permute_rope_rows in model.cpp).
enum class RopeStyle { Interleaved, Half };

// How RoPE's angles are stretched for contexts longer than the model was first trained at:
//  Linear: every angle divided by the factor (position interpolation; GGUF rope.scaling.type = linear)
//  Llama3: each pair's angle divided by its own factor — 1 for short wavelengths, the factor for long ones, a smooth
//          blend between (Llama 3.1/3.2's rope_scaling; GGUF carries the divisors as the tensor rope_freqs.weight)
//  Yarn:   YaRN (Peng et al. 2023): pairs turning more than β_fast times over the original context keep their angle,
//          those turning fewer than β_slow times are divided by the factor, a linear ramp between; cos and sin are
//          multiplied by attn_factor · (1 + 0.1 ln factor) (Qwen 2.5's long-context rope_scaling; GGUF rope.scaling.type
//          = yarn)
enum class RopeScaling { None, Linear, Llama3, Yarn };

enum class NormKind { LayerNorm, RMSNorm };  // LayerNorm: (x − μ)/σ · w + b;  RMSNorm: x / rms(x) · w
// GeluTanh: GELU(x W_up) W_down;  SwiGLU: (silu(x W_gate) ⊙ x W_up) W_down;  GeGLU: (GELU(x W_gate) ⊙ x W_up) W_down
// (GELU: the tanh approximation); Gelu: GELU(x W_up) W_down with the exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)) (BERT)
enum class MlpKind { GeluTanh, SwiGLU, GeGLU, Gelu };
// How a sentence embedding is made from the final hidden states (GGUF {arch}.pooling_type, llama.cpp's numbering):
// Mean over the tokens, Cls: the first token's ([CLS]), Last: the last token's. Rank: a cross-encoder (reranker) —
// [CLS]'s state through a classification head (cls: dense + tanh, cls.output: one score), not an embedding.
enum class Pooling { None = 0, Mean = 1, Cls = 2, Last = 3, Rank = 4 };

struct ModelConfig {
    std::string arch = "llama";  // the family: its GGUF general.architecture name (family_names() lists them)
    std::string name;
    // ---- sizes
    int64_t n_vocab = 0;
    int64_t n_ctx = 0;      // context length the model was trained for
    int64_t n_embd = 0;     // d_model
    int64_t n_ff = 0;       // hidden width of the MLP
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;  // < n_head: grouped-query attention
    int64_t n_head_dim = 0; // a head's width; 0: n_embd / n_head (the queries' width n_head · head_dim may differ from n_embd)
    // ---- the block description
    NormKind norm = NormKind::RMSNorm;
    float norm_eps = 1e-5f;
    bool learned_positions = false;  // absolute position embeddings added to the token's (GPT-2); otherwise RoPE
    float rope_theta = 10000.0f;
    int64_t rope_dim = 0;   // 0: the whole head
    RopeStyle rope_style = RopeStyle::Interleaved;  // the row layout of Wq/Wk as loaded
    RopeScaling rope_scaling = RopeScaling::None;
    float rope_scale = 1.0f;                        // Linear, Llama3: the factor
    float rope_low_freq = 1.0f, rope_high_freq = 4.0f;  // Llama3: the wavelengths blended lie between orig_ctx/high and orig_ctx/low
    int64_t rope_orig_ctx = 0;                      // Llama3, Yarn: the context first trained at
    float rope_yarn_beta_fast = 32.0f, rope_yarn_beta_slow = 1.0f;  // Yarn: the ramp's ends, in turns over rope_orig_ctx
    float rope_attn_factor = 1.0f;                  // Yarn: cos and sin × this × (1 + 0.1 ln factor) (GGUF rope.scaling.attn_factor)
    std::vector<float> rope_freq_factors;           // per rotated pair j, the divisor of its angle (Llama3; [n_rot/2])
    bool fused_qkv = false;  // one attn_qkv projection [3C, C] instead of attn_q, attn_k, attn_v
    bool qkv_bias = false;   // biases on the query, key and value projections
    bool out_bias = false;   // a bias on the attention output projection
    bool qk_norm = false;    // each head's query and key RMS-normalised (weights [head_dim]) before RoPE
    int64_t sliding_window = 0;  // the windowed layers' queries see the last sliding_window positions (themselves included); 0: all
    // which layers use the window: 0 or 1: every one; P ≥ 2: layer l when l mod P < P − 1 (llama.cpp's n_swa_pattern:
    // Gemma 2 alternates, P = 2: even layers windowed, odd ones global)
    int64_t sliding_window_pattern = 0;
    float attn_scale = 0;      // the scores' factor: 0: 1/√head_dim; Gemma 2: query_pre_attn_scalar^(−1/2)
    float attn_softcap = 0;    // > 0: scores s → cap · tanh(s / cap) before the softmax (Gemma 2: 50)
    float final_softcap = 0;   // > 0: logits z → cap · tanh(z / cap) (Gemma 2: 30)
    bool post_norms = false;   // each sub-layer's output normalised before its residual add (attn_post_norm, ffn_post_norm:
                               // Gemma 2's sandwich)
    bool embd_scale = false;   // the token embeddings multiplied by √n_embd (Gemma)
    MlpKind mlp = MlpKind::SwiGLU;
    bool mlp_bias = false;   // biases on the MLP's projections
    bool tied_embeddings = false;  // the output projection is the token embedding
    // ---- encoders (BERT)
    bool causal = true;        // false: every position attends to every position of its sequence (bidirectional)
    bool post_ln = false;      // the norms after the residual adds: x = Norm(x + Attn(x)); x = Norm(x + MLP(x))
                               // (weights attn_output_norm, layer_output_norm; no norm before the sub-layers)
    bool embd_norm = false;    // a LayerNorm of the embeddings before the first block (token_embd_norm)
    int64_t n_token_types = 0; // > 0: token_types.weight [n_token_types, C]; its row 0 (segment A) is added to every position
    bool encoder = false;      // no output head (no output_norm, no output projection): the model makes embeddings
    Pooling pooling = Pooling::Mean;  // sentence embeddings

    bool uses_rope() const { return !learned_positions; }
    bool gated_mlp() const { return mlp == MlpKind::SwiGLU || mlp == MlpKind::GeGLU; }
    bool norm_bias() const { return norm == NormKind::LayerNorm; }  // LayerNorm has a bias, RMSNorm none
    int64_t head_dim() const { return n_head_dim ? n_head_dim : n_head ? n_embd / n_head : 0; }
    int64_t q_dim() const { return head_dim() * n_head; }  // the queries' (and the attention output's) width
    int64_t kv_dim() const { return head_dim() * n_head_kv; }
    int64_t n_rot() const { return rope_dim ? rope_dim : head_dim(); }
    // The keys layer l's query at position p sees: positions max(0, p − window + 1) .. p (window 0: 0 .. p).
    int64_t window_of(int64_t layer) const {
        return sliding_window_pattern <= 1 || layer % sliding_window_pattern < sliding_window_pattern - 1 ? sliding_window : 0;
    }
    float attention_scale() const { return attn_scale > 0 ? attn_scale : 1.0f / std::sqrt(static_cast<float>(head_dim())); }
    // Parameter count from the shapes (the output matrix is counted once when tied).
    int64_t n_params() const;
    // Throws a bad-input Error for inconsistent or absurd sizes, or an unknown family.
    void validate() const;
};

// Llama 3's RoPE scaling: sets the fields and computes the per-pair divisors as llama.cpp's converter does.
void set_llama3_rope(ModelConfig& c, float factor, float low_freq_factor, float high_freq_factor, int64_t original_ctx);
// Per-pair divisors from a file (a GGUF's rope_freqs.weight): recognised as Llama 3's scaling when some factor with
// llama.cpp's defaults (low 1, high 4, 8192 positions) reproduces them, otherwise kept as given.
void set_rope_freq_factors(ModelConfig& c, std::vector<float> factors);

// The architecture families llmforge runs (GGUF general.architecture names: "gpt2", "llama", ...).
std::vector<std::string> family_names();

// Named real-size presets of every family: gpt2, gpt2-medium, gpt2-large, gpt2-xl, gpt3-175b, tinyllama-1.1b,
// llama2-7b/13b/70b, plus small ones for tests and demos (the families' files list them).
std::vector<std::string> preset_names();
ModelConfig preset(const std::string& name);  // throws a bad-input Error naming the known presets
// A model config from the text of a Hugging Face config.json.
ModelConfig config_from_hf_json(const std::string& text, const std::string& path);

// The weights and metadata of one model. Tensor data is memory-mapped from the file where possible,
// otherwise owned by `storage`.
class Model {
public:
    ModelConfig config;
    std::vector<Tensor> tensors;
    std::optional<Vocab> vocab;
    gguf::Metadata meta;             // metadata carried from the source file (general.*), for info and conversion
    std::string path, format;        // where it came from: "gguf", "llama2c", "safetensors", "random"; "train": a trainer's weights,
                                     // "gradients": its gradients (saved without the families' offsets)
    std::vector<std::shared_ptr<const void>> storage;  // keeps mappings and buffers alive

    const Tensor* find(const std::string& name) const;
    const Tensor& get(const std::string& name) const;  // throws "missing tensor" bad-input Error
    void add(Tensor t) { tensors.push_back(std::move(t)); index_.clear(); }
    // Checks every tensor the architecture needs is present with the right shape and a supported type.
    void check() const;
    // Memory-mapped bytes vs. bytes copied into memory.
    size_t mapped_bytes = 0, owned_bytes = 0;
    // The file mappings that tensors may view (the loaders add them where the file is mapped, not read into memory).
    std::vector<std::pair<const uint8_t*, size_t>> mapped_files;
    // Whether [p, p + n) lies in one of mapped_files: bytes of the file, never to be written.
    bool in_mapped_file(const void* p, size_t n) const;

    // A model with this one's config, vocabulary, metadata, source and storage but no tensors yet (to add views of
    // some of them, renamed or transformed).
    Model shell() const;
    // Owned copy of a tensor's data (for conversions); returns the new Tensor pointing into storage.
    Tensor own(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t>&& bytes);
    // A new owned tensor of nbytes whose bytes the caller writes (uninitialised; huge-page-backed memory).
    Tensor own_uninit(const std::string& name, DType dtype, std::vector<int64_t> shape, size_t nbytes);

private:
    mutable std::map<std::string, size_t> index_;
};

struct LoadOptions {
    std::string tokenizer_path;  // llama2.c models: tokenizer.bin (default: tokenizer.bin next to the model)
    bool require_tokenizer = false;
    bool use_mmap = true;        // false: read the weights into memory (huge pages) instead of mapping the file
    bool repack = false;         // repack_for_cpu after loading (inference only)
    bool float_panels = true;    // with repack: f32/f16 panels too (false: only the layouts that keep ggml's digits)
};

// Reorders the matrices that only matrix products read (blk.*.weight and an untied output.weight) for the CPU's kernels,
// where the CPU has the kernels for the layout:
// - with float_panels, f32 and f16 ones (rows a multiple of 32) into the panel layout of kernels::pack_panels /
//   pack_panels_f16 — in place when in memory, into memory of their own when mapped (the mapping's pages released) —
//   which the packed GEMM reads without packing per call and decoding streams (LLMFORGE_PANELS=0 leaves them
//   row-major). Panels sum in their own order (batch-invariant), not ggml's.
// - Q4_0 ones (rows a multiple of 8) interleaved by eight rows (AVX2), as llama.cpp repacks them — in place when in
//   memory, into memory of their own when mapped: ggml's digits.
// Returns how many it reordered. Such a model is for inference: saving it or merging adapters into it is refused.
int repack_for_cpu(Model& m, ThreadPool& pool, bool float_panels = true);
// Throws a bad-input Error ("cannot WHAT: tensor '...' is repacked ...") if a tensor is not row-major.
void require_row_major(const Model& m, const char* what);

// Loads GGUF, llama2.c .bin or a Hugging Face safetensors model (a directory or .safetensors with config.json).
Model load_model(const std::string& path, const LoadOptions& opts = {});

// LoRA adapters in llama.cpp's GGUF form: general.type = "adapter", adapter.type = "lora", adapter.lora.alpha, and
// "<weight>.lora_a" [rank, in], "<weight>.lora_b" [out, rank] per adapted weight. `adapter.meta` must hold the alpha.
void save_lora_adapter(const Model& adapter, const std::string& path);
// Reads an adapter for a model of config `base` (its RoPE row order is matched); the alpha is in meta.
Model load_lora_adapter(const std::string& path, const ModelConfig& base);
// base with W + scale · (alpha/rank) · B A for every adapted weight, computed in f32 and stored as `merged_type`, or
// (Unknown) in W's type where W is f32, f16 or bf16 and in f16 where W is quantised (as llama-export-lora writes
// them: requantising would round most of an adapter's small change away — a QLoRA adapter's base is quantised).
Model merge_lora(const Model& base, const Model& adapter, float scale = 1.0f, DType merged_type = DType::Unknown);

enum class FileFormat { GGUF, Llama2c, Safetensors };
FileFormat format_for_output(const std::string& path);  // by extension: .gguf, .bin, else safetensors
// Writes the model; tensors are converted to `dtype` (f32/f16/bf16) unless dtype is Unknown (keep as is).
void save_model(const Model& model, const std::string& path, DType dtype = DType::Unknown);

// A model with random weights (normal(0, 0.02), norms at 1, biases at 0), reproducible from the seed.
// The vocabulary is `vocab` when given (cfg.n_vocab must be its size), else a byte-fallback SentencePiece vocabulary
// of cfg.n_vocab tokens, so that the model can tokenize and generate.
Model init_random(const ModelConfig& cfg, DType dtype, uint64_t seed, const Vocab* vocab = nullptr);
// The same model written straight to a GGUF file tensor by tensor, in bounded memory (for models larger than RAM).
void init_random_gguf(const ModelConfig& cfg, DType dtype, uint64_t seed, const std::string& path, const Vocab* vocab = nullptr);

// The tensors a model of this configuration has: name → shape, in file order.
std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ModelConfig& cfg);

// GGUF metadata for the config (general.architecture, ARCH.context_length, ...), and back.
void config_to_gguf(const ModelConfig& cfg, gguf::Metadata& meta);
ModelConfig config_from_gguf(const gguf::Metadata& meta, const std::string& path);
// The same completed by what the file's tensors say: the vocabulary size (the embedding's rows, where the metadata
// leaves it out), tied embeddings (no output.weight), Llama 3's RoPE divisors (rope_freqs.weight).
ModelConfig config_from_gguf(const gguf::Metadata& meta, const std::vector<Tensor>& tensors, const std::string& path);
// The row layout of Wq/Wk in this family's GGUF files (llama.cpp permutes LLaMA's to interleaved RoPE pairs).
RopeStyle gguf_rope_style(const ModelConfig& cfg);

}  // namespace llmforge
