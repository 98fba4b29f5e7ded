// llama2.c's model format (Karpathy, llama2.c run.c, "legacy" version 0):
//   header: 7 × int32  dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: separate classifier), seq_len
//   then f32 arrays: token_embedding [vocab, dim]; rms_att [L, dim]; wq [L, dim, dim]; wk [L, kv_dim, dim];
//   wv [L, kv_dim, dim]; wo [L, dim, dim]; rms_ffn [L, dim]; w1 [L, hidden, dim]; w2 [L, dim, hidden];
//   w3 [L, hidden, dim]; rms_final [dim]; freq_cis_real [seq_len, head/2]; freq_cis_imag [seq_len, head/2];
//   wcls [vocab, dim] only when vocab_size < 0.
// RoPE pairs are interleaved, as in GGUF. w1 is the SwiGLU gate, w3 the up projection, w2 the down projection.
#include <cmath>
#include <cstring>

#include "core/mmap_file.h"
#include "formats/formats.h"
#include "llmforge/error.h"

namespace llmforge::formats {

namespace {
std::string dirname_of(const std::string& p) {
    const size_t s = p.rfind('/');
    return s == std::string::npos ? "." : p.substr(0, s);
}
}  // namespace

std::string llama2c_tokenizer_path(const std::string& model_path) {
    const std::string stem = model_path.size() > 4 && model_path.compare(model_path.size() - 4, 4, ".bin") == 0
                                 ? model_path.substr(0, model_path.size() - 4) : model_path;
    return stem + ".tokenizer.bin";
}

Model load_llama2c(const std::string& path, const LoadOptions& opts) {
    auto f = MappedFile::open(path, opts.use_mmap);
    if (f->size() < 28) throw_bad_input("'%s' is truncated: %zu bytes is too small for a llama2.c header", path.c_str(), f->size());
    int32_t h[7];
    std::memcpy(h, f->data(), sizeof(h));
    Model m;
    m.path = path;
    m.format = "llama2c";
    ModelConfig& c = m.config;
    c.arch = "llama";  // the default description is LLaMA's block
    c.name = "llama2c";
    c.n_embd = h[0];
    c.n_ff = h[1];
    c.n_layer = h[2];
    c.n_head = h[3];
    c.n_head_kv = h[4];
    c.tied_embeddings = h[5] > 0;
    c.n_vocab = std::abs(static_cast<int64_t>(h[5]));
    c.n_ctx = h[6];
    for (int k = 0; k < 7; ++k)
        if (h[k] == 0 || (k != 5 && h[k] < 0))
            throw_bad_input("'%s' is not a llama2.c model: header field %d is %d", path.c_str(), k, h[k]);
    c.validate();
    const int64_t C = c.n_embd, F = c.n_ff, L = c.n_layer, V = c.n_vocab, KV = c.kv_dim(), T = c.n_ctx, HD = c.head_dim();
    const int64_t n_floats = V * C + L * (C + C * C + 2 * KV * C + C * C + C + 3 * F * C) + C + T * HD + (c.tied_embeddings ? 0 : V * C);
    const uint64_t expect = 28 + static_cast<uint64_t>(n_floats) * 4;
    if (f->size() < expect)
        throw_bad_input("'%s' is truncated: the header describes %llu bytes of weights but the file has %zu bytes", path.c_str(),
                        static_cast<unsigned long long>(expect), f->size());
    if (f->size() != expect)
        throw_bad_input("'%s' is not a llama2.c model of the size its header describes (%zu bytes, expected %llu)", path.c_str(), f->size(),
                        static_cast<unsigned long long>(expect));
    const float* p = reinterpret_cast<const float*>(f->data() + 28);
    auto view = [&](const std::string& name, std::vector<int64_t> shape, const float* data) {
        Tensor t;
        t.name = name;
        t.dtype = DType::F32;
        t.shape = std::move(shape);
        t.data = data;
        m.add(std::move(t));
    };
    const float* emb = p;
    view("token_embd.weight", {V, C}, p);
    p += V * C;
    auto per_layer = [&](const char* suffix, std::vector<int64_t> shape) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        for (int64_t l = 0; l < L; ++l) view("blk." + std::to_string(l) + "." + suffix, shape, p + l * n);
        p += L * n;
    };
    per_layer("attn_norm.weight", {C});
    per_layer("attn_q.weight", {C, C});
    per_layer("attn_k.weight", {KV, C});
    per_layer("attn_v.weight", {KV, C});
    per_layer("attn_output.weight", {C, C});
    per_layer("ffn_norm.weight", {C});
    per_layer("ffn_gate.weight", {F, C});
    per_layer("ffn_down.weight", {C, F});
    per_layer("ffn_up.weight", {F, C});
    view("output_norm.weight", {C}, p);
    p += C;
    p += T * HD;  // the precomputed RoPE tables: we compute RoPE ourselves
    if (!c.tied_embeddings) view("output.weight", {V, C}, p);
    (void)emb;
    (opts.use_mmap ? m.mapped_bytes : m.owned_bytes) = f->size();
    m.storage.push_back(f);
    if (opts.use_mmap) m.mapped_files.emplace_back(f->data(), f->size());

    // the tokenizer: --tokenizer, else NAME.tokenizer.bin (what save_llama2c writes for NAME.bin), else tokenizer.bin beside it
    std::string tok = opts.tokenizer_path;
    if (tok.empty() && file_exists(llama2c_tokenizer_path(path))) tok = llama2c_tokenizer_path(path);
    if (tok.empty() && file_exists(dirname_of(path) + "/tokenizer.bin")) tok = dirname_of(path) + "/tokenizer.bin";
    if (!tok.empty()) m.vocab = Vocab::from_llama2c(tok, static_cast<int32_t>(V));
    return m;
}

void save_llama2c(const Model& m, const std::string& path) {
    const ModelConfig& c = m.config;
    if (c.norm != NormKind::RMSNorm || !c.uses_rope() || !c.gated_mlp() || c.fused_qkv || c.qkv_bias || c.out_bias || c.mlp_bias)
        throw_bad_input("llama2.c files hold LLaMA's block only (RMSNorm, RoPE, SwiGLU, no biases), not a %s model", c.arch.c_str());
    if (c.n_rot() != c.head_dim()) throw_bad_input("llama2.c files cannot hold partial rotary embeddings");
    if (c.rope_scaling != RopeScaling::None || c.rope_theta != 10000.0f)
        throw_bad_input("llama2.c files hold RoPE with base 10000 and no scaling only (this model: base %g%s)", static_cast<double>(c.rope_theta),
                        c.rope_scaling == RopeScaling::None ? "" : ", scaled");
    const int64_t C = c.n_embd, L = c.n_layer, T = c.n_ctx, HD = c.head_dim();
    AtomicWriter w(path);
    const int32_t h[7] = {static_cast<int32_t>(C), static_cast<int32_t>(c.n_ff), static_cast<int32_t>(L), static_cast<int32_t>(c.n_head),
                          static_cast<int32_t>(c.n_head_kv), static_cast<int32_t>(c.tied_embeddings ? c.n_vocab : -c.n_vocab),
                          static_cast<int32_t>(T)};
    w.write(h, sizeof(h));
    auto put = [&](const std::string& name) {
        const Tensor& t = m.get(name);
        std::vector<uint8_t> bytes;
        const bool is_q = name.find(".attn_q.") != std::string::npos, is_k = name.find(".attn_k.") != std::string::npos;
        if (c.rope_style == RopeStyle::Half && (is_q || is_k)) {
            Model tmp;
            Tensor p = tmp.own(name, t.dtype, t.shape, permute_rope_rows(t, is_q ? c.n_head : c.n_head_kv, false));
            bytes = convert_bytes(p, DType::F32);
        } else {
            bytes = convert_bytes(t, DType::F32);
        }
        w.write(bytes.data(), bytes.size());
    };
    auto per_layer = [&](const char* suffix) {
        for (int64_t l = 0; l < L; ++l) put("blk." + std::to_string(l) + "." + suffix);
    };
    put("token_embd.weight");
    for (const char* s : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                          "ffn_norm.weight", "ffn_gate.weight", "ffn_down.weight", "ffn_up.weight"})
        per_layer(s);
    put("output_norm.weight");
    // RoPE tables as llama2.c's exporter wrote them: cos and sin of pos · θ^(-2i/d).
    std::vector<float> re(static_cast<size_t>(T * HD / 2)), im(re.size());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < HD / 2; ++i) {
            const double a = static_cast<double>(t) * std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) / static_cast<double>(HD));
            re[static_cast<size_t>(t * HD / 2 + i)] = static_cast<float>(std::cos(a));
            im[static_cast<size_t>(t * HD / 2 + i)] = static_cast<float>(std::sin(a));
        }
    w.write(re.data(), re.size() * 4);
    w.write(im.data(), im.size() * 4);
    if (!c.tied_embeddings) put("output.weight");
    w.commit();
    if (m.vocab) m.vocab->write_llama2c(llama2c_tokenizer_path(path));  // NAME.tokenizer.bin: never another model's tokenizer.bin
}

}  // namespace llmforge::formats
