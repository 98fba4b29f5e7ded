// Model: lookup and checks, format dispatch, conversions shared by the writers, and random initialisation.
#include "llmforge/model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/weight_types.h"
#include "formats/formats.h"
#include "llmforge/error.h"
#include "llmforge/kernels.h"
#include "llmforge/mmap_file.h"
#include "llmforge/threadpool.h"

namespace llmforge {

const Tensor* Model::find(const std::string& name) const {
    if (index_.size() != tensors.size()) {
        index_.clear();
        for (size_t i = 0; i < tensors.size(); ++i) index_[tensors[i].name] = i;
    }
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors[it->second];
}

const Tensor& Model::get(const std::string& name) const {
    const Tensor* t = find(name);
    if (!t) throw_bad_input("'%s': missing tensor '%s'", path.c_str(), name.c_str());
    return *t;
}

Tensor Model::own(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t>&& bytes) {
    auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    owned_bytes += buf->size();
    Tensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = buf->data();
    storage.push_back(buf);
    return t;
}

void Model::check() const {
    config.validate();
    for (const auto& [name, shape] : expected_tensors(config)) {
        const Tensor& t = get(name);
        if (t.shape != shape) {
            Tensor want;
            want.shape = shape;
            throw_bad_input("'%s': tensor '%s' has shape %s, expected %s", path.c_str(), name.c_str(), t.shape_str().c_str(), want.shape_str().c_str());
        }
        if (!dtype_supported(t.dtype))
            throw_bad_input("'%s': tensor '%s' has type %s, which is not supported yet (f32, f16 and bf16 are; quantised types come later)",
                            path.c_str(), name.c_str(), dtype_name(t.dtype));
        if (reinterpret_cast<uintptr_t>(t.data) % weight_type(t.dtype, "check").alignment() != 0)
            throw_bad_input("'%s': tensor '%s' data is misaligned", path.c_str(), name.c_str());
    }
}

static bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

Model load_model(const std::string& path, const LoadOptions& opts) {
    if (!file_exists(path)) throw_bad_input("model file '%s' does not exist", path.c_str());
    Model m;
    if (is_directory(path) || ends_with(path, ".safetensors")) m = formats::load_safetensors(path, opts);
    else if (gguf::has_magic(path)) m = formats::load_gguf(path, opts);
    else if (ends_with(path, ".bin")) m = formats::load_llama2c(path, opts);
    else throw_bad_input("'%s' is not a GGUF file (wrong magic), and not a llama2.c .bin or safetensors model", path.c_str());
    // --tokenizer FILE: any tokenizer file (tokenizer.json, GGUF, tokenizer.bin, tiktoken, …) for any model, in place of
    // the one the model carries (whose chat template stays unless the new one brings its own)
    if (!opts.tokenizer_path.empty() && m.format != "llama2c") {
        Vocab v = Vocab::load(opts.tokenizer_path);
        if (v.size() > m.config.n_vocab)
            throw_bad_input("the tokenizer '%s' has %d tokens but the model '%s' has only %lld embeddings", opts.tokenizer_path.c_str(), v.size(),
                            path.c_str(), static_cast<long long>(m.config.n_vocab));
        v.pad_to(static_cast<int32_t>(m.config.n_vocab));
        if (v.chat_template.empty() && m.vocab) v.chat_template = m.vocab->chat_template;
        m.vocab = std::move(v);
    }
    m.check();
    if (opts.require_tokenizer && !m.vocab)
        throw_bad_input("'%s' has no tokenizer%s", path.c_str(), m.format == "llama2c" ? " (pass --tokenizer tokenizer.bin)" : "");
    if (opts.repack && !opts.use_mmap) {
        ThreadPool pool(ThreadPool::default_threads());
        repack_for_cpu(m, pool);
    }
    return m;
}

int repack_for_cpu(Model& m, ThreadPool& pool) {
    if (m.mapped_bytes > 0 || !kernels::has_panel_kernels()) return 0;  // mapped pages are the file's: never written
    const bool untied = m.find("output.weight") != nullptr;
    int n = 0;
    for (Tensor& t : m.tensors) {
        const bool product_only = (t.name.rfind("blk.", 0) == 0 && ends_with(t.name, ".weight")) || (untied && t.name == "output.weight");
        if (!product_only || t.dtype != DType::F32 || t.shape.size() != 2 || t.layout != Tensor::Layout::Rows ||
            t.shape[0] % kernels::kPanelRows != 0)
            continue;
        kernels::pack_panels(static_cast<float*>(const_cast<void*>(t.data)), t.shape[0], t.shape[1], pool);
        t.layout = Tensor::Layout::Panels;
        ++n;
    }
    return n;
}

static void require_row_major(const Model& m, const char* what) {
    for (const Tensor& t : m.tensors)
        if (t.layout != Tensor::Layout::Rows)
            throw_bad_input("cannot %s: tensor '%s' is repacked for the CPU's matrix products (load the model without --no-mmap)", what, t.name.c_str());
}

FileFormat format_for_output(const std::string& path) {
    if (ends_with(path, ".gguf")) return FileFormat::GGUF;
    if (ends_with(path, ".bin")) return FileFormat::Llama2c;
    if (ends_with(path, ".safetensors") || is_directory(path) || ends_with(path, "/")) return FileFormat::Safetensors;
    // a name without a file extension is a new directory ("run-0.1-grads" has none: an extension is letters and digits)
    const size_t slash = path.rfind('/'), dot = path.rfind('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return FileFormat::Safetensors;
    const std::string ext = path.substr(dot + 1);
    const bool is_ext = !ext.empty() && ext.size() <= 12 && std::all_of(ext.begin(), ext.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }) &&
                        std::any_of(ext.begin(), ext.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
    if (!is_ext) return FileFormat::Safetensors;
    throw_bad_input("cannot tell the format to write from the name '%s': use NAME.gguf, NAME.bin (llama2.c), NAME.safetensors, or a "
                    "directory (safetensors + config.json)", path.c_str());
}

void save_model(const Model& model, const std::string& path, DType dtype) {
    require_row_major(model, "save the model");
    if (dtype != DType::Unknown && !dtype_supported(dtype)) throw_bad_input("cannot write tensors as %s", dtype_name(dtype));
    switch (format_for_output(path)) {
        case FileFormat::GGUF: formats::save_gguf(model, path, dtype); break;
        case FileFormat::Llama2c: formats::save_llama2c(model, path); break;
        case FileFormat::Safetensors: formats::save_safetensors(model, path, dtype); break;
    }
}

// ------------------------------------------------------------------------------------ shared conversions
namespace formats {

std::vector<uint8_t> convert_bytes(const Tensor& t, DType to) {
    const size_t n = static_cast<size_t>(t.numel());
    std::vector<uint8_t> out(weight_type(to, "convert").row_bytes(static_cast<int64_t>(n)));
    if (t.dtype == to) {
        std::memcpy(out.data(), t.data, out.size());
        return out;
    }
    std::vector<float> tmp(n);
    convert_to_f32(t.dtype, t.data, tmp.data(), n);
    convert_from_f32(to, tmp.data(), out.data(), n);
    return out;
}

std::vector<uint8_t> transpose_bytes(const Tensor& t) {
    const int64_t R = t.shape.size() == 2 ? t.shape[0] : 1, C = t.cols();
    const WeightType& wt = weight_type(t.dtype, "transpose");
    if (wt.block_elems() != 1) throw_runtime("cannot transpose '%s': %s is stored in blocks", t.name.c_str(), dtype_name(t.dtype));
    const size_t es = wt.block_bytes();
    std::vector<uint8_t> out(static_cast<size_t>(R * C) * es);
    const uint8_t* src = static_cast<const uint8_t*>(t.data);
    for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < C; ++c) std::memcpy(&out[(c * R + r) * es], &src[(r * C + c) * es], es);
    return out;
}

std::vector<uint8_t> permute_rope_rows(const Tensor& t, int64_t n_heads, bool to_half) {
    // Interleaved row (h, i, s) ↔ Half row (h, s, i), for head h, pair i < d/2, member s ∈ {0, 1}.
    const int64_t rows = t.shape[0], cols = t.cols();
    const int64_t d = rows / n_heads, half = d / 2;
    const size_t row_bytes = weight_type(t.dtype, "permute").row_bytes(cols);
    std::vector<uint8_t> out(static_cast<size_t>(rows) * row_bytes);
    const uint8_t* src = static_cast<const uint8_t*>(t.data);
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < half; ++i)
            for (int64_t s = 0; s < 2; ++s) {
                const int64_t inter = h * d + 2 * i + s, halfrow = h * d + s * half + i;
                const int64_t from = to_half ? inter : halfrow, to = to_half ? halfrow : inter;
                std::memcpy(&out[static_cast<size_t>(to) * row_bytes], src + static_cast<size_t>(from) * row_bytes, row_bytes);
            }
    return out;
}

}  // namespace formats

// ------------------------------------------------------------------------------------ random init
namespace {
uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Fills n values of tensor `idx` with N(0, std) (Box–Muller on splitmix64), chunk by chunk, so the values
// depend only on (seed, idx, position) and never on the number of threads.
// `first` (a multiple of the chunk size) is the position of out[0] in the tensor, so a tensor can be made in pieces.
constexpr int64_t kRandomChunk = 1 << 16;
void fill_normal(float* out, int64_t n, float stddev, uint64_t seed, uint64_t idx, ThreadPool& pool, int64_t first = 0) {
    const int64_t chunk = kRandomChunk;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    pool.parallel_for(n_chunks, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
            uint64_t s = seed * 0x100000001b3ull ^ (idx << 40) ^ static_cast<uint64_t>(first / chunk + c);
            splitmix64(s);
            const int64_t b = c * chunk, e = std::min(n, b + chunk);
            for (int64_t i = b; i < e; i += 2) {
                const double u1 = (static_cast<double>(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
                const double u2 = static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53;
                const double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
                out[i] = static_cast<float>(r * std::cos(2 * M_PI * u2));
                if (i + 1 < e) out[i + 1] = static_cast<float>(r * std::sin(2 * M_PI * u2));
            }
        }
    });
}

bool ends(const std::string& s, const char* suf) {
    const size_t n = std::strlen(suf);
    return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// A SentencePiece-style vocabulary for random models: <unk>, <s>, </s>, the 256 byte tokens, printable ASCII, then
// every string of 2, 3, 4 ... characters over "▁a-z" (longer pieces score higher, so merges build whole pieces) until the
// vocabulary is full. A random model then prints random letter groups rather than placeholders.
Vocab byte_vocab(int64_t n_vocab) {
    Vocab v;
    auto add = [&](std::string p, float score, TokenType t) {
        if (v.size() < n_vocab) { v.pieces.push_back(std::move(p)); v.scores.push_back(score); v.types.push_back(t); }
    };
    add("<unk>", 0, TokenType::Unknown);
    add("<s>", 0, TokenType::Control);
    add("</s>", 0, TokenType::Control);
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) add(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 0, TokenType::Byte);
    add("\xe2\x96\x81", 1, TokenType::Normal);
    for (int c = 33; c < 127; ++c) add(std::string(1, static_cast<char>(c)), 1, TokenType::Normal);
    std::vector<std::string> alphabet = {"\xe2\x96\x81"};
    for (char c = 'a'; c <= 'z'; ++c) alphabet.emplace_back(1, c);
    std::vector<std::string> level(alphabet.begin(), alphabet.end());
    for (int len = 2; v.size() < n_vocab && len < 8; ++len) {
        std::vector<std::string> next;
        for (const auto& p : level)
            for (const auto& a : alphabet) {
                if (a == alphabet[0] && p.size() >= 3 && p.compare(p.size() - 3, 3, alphabet[0]) == 0) continue;  // no "▁▁"
                next.push_back(p + a);
                add(next.back(), static_cast<float>(len), TokenType::Normal);
            }
        level.swap(next);
    }
    if (v.size() < 3) throw_bad_input("vocabulary of %lld tokens is too small", static_cast<long long>(n_vocab));
    v.finalize();
    return v;
}
// Values of one tensor of a random model, positions [first, first + n).
void random_values(const std::string& name, uint64_t idx, uint64_t seed, float* out, int64_t first, int64_t n, ThreadPool& pool) {
    if (ends(name, "norm.weight")) std::fill(out, out + n, 1.0f);
    else if (ends(name, ".bias")) std::fill(out, out + n, 0.0f);
    else fill_normal(out, n, 0.02f, seed, idx, pool, first);
}

gguf::Metadata random_meta(const ModelConfig& cfg, uint64_t seed) {
    gguf::Metadata meta;
    meta.set("general.name", gguf::Value::str(cfg.name));
    meta.set("general.source", gguf::Value::str("llmforge init --seed " + std::to_string(seed)));
    return meta;
}
}  // namespace

void init_random_gguf(const ModelConfig& cfg, DType dtype, uint64_t seed, const std::string& path) {
    cfg.validate();
    if (!dtype_supported(dtype)) throw_bad_input("init: dtype must be f32, f16 or bf16");
    gguf::Metadata meta = random_meta(cfg, seed);
    config_to_gguf(cfg, meta);
    byte_vocab(cfg.n_vocab).to_gguf(meta);
    meta.set("general.file_type", gguf::Value::u32(dtype == DType::F16 ? 1u : dtype == DType::BF16 ? 32u : 0u));
    std::vector<Tensor> infos;
    for (const auto& [name, shape] : expected_tensors(cfg)) {
        Tensor t;
        t.name = name;
        t.shape = shape;
        t.dtype = shape.size() == 1 ? DType::F32 : dtype;  // norms and biases stay f32, as save_model writes them
        infos.push_back(std::move(t));
    }
    if (!cfg.rope_freq_factors.empty()) {  // Llama 3's RoPE divisors, as llama.cpp's converter writes them
        Tensor t;
        t.name = "rope_freqs.weight";
        t.shape = {static_cast<int64_t>(cfg.rope_freq_factors.size())};
        t.dtype = DType::F32;
        infos.push_back(std::move(t));
    }
    ThreadPool pool(ThreadPool::default_threads());
    const int64_t piece = 64 * kRandomChunk;  // 4M values (16 MiB of f32) at a time: memory stays bounded
    std::vector<float> buf(static_cast<size_t>(piece));
    std::vector<uint8_t> out(static_cast<size_t>(piece) * 4);
    gguf::write_streaming(path, meta, infos, [&](size_t i, AtomicWriter& w) {
        const Tensor& t = infos[i];
        if (t.name == "rope_freqs.weight") {
            w.write(cfg.rope_freq_factors.data(), cfg.rope_freq_factors.size() * sizeof(float));
            return;
        }
        const int64_t n = t.numel();
        for (int64_t first = 0; first < n; first += piece) {
            const int64_t m = std::min(piece, n - first);
            random_values(t.name, i, seed, buf.data(), first, m, pool);
            convert_from_f32(t.dtype, buf.data(), out.data(), static_cast<size_t>(m));
            w.write(out.data(), weight_type(t.dtype, "init").row_bytes(m));
        }
    });
}

Model init_random(const ModelConfig& cfg, DType dtype, uint64_t seed) {
    cfg.validate();
    if (!dtype_supported(dtype)) throw_bad_input("init: dtype must be f32, f16 or bf16");
    Model m;
    m.config = cfg;
    m.format = "random";
    m.path = "(random " + cfg.name + ")";
    ThreadPool pool(ThreadPool::default_threads());
    uint64_t idx = 0;
    for (const auto& [name, shape] : expected_tensors(cfg)) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> v(static_cast<size_t>(n));
        random_values(name, idx, seed, v.data(), 0, n, pool);
        ++idx;
        std::vector<uint8_t> bytes(weight_type(dtype, "init").row_bytes(n));
        convert_from_f32(dtype, v.data(), bytes.data(), static_cast<size_t>(n));
        m.add(m.own(name, dtype, shape, std::move(bytes)));
    }
    m.vocab = byte_vocab(cfg.n_vocab);
    m.meta = random_meta(cfg, seed);
    return m;
}

}  // namespace llmforge

namespace llmforge {

Model merge_lora(const Model& base, const Model& adapter, float scale) {
    require_row_major(base, "merge an adapter");
    if (!adapter.meta.find("adapter.lora.alpha")) throw_bad_input("the adapter has no adapter.lora.alpha");
    const float alpha = static_cast<float>(adapter.meta.get_float("adapter.lora.alpha", 0));
    Model m;
    m.config = base.config;
    m.vocab = base.vocab;
    m.meta = base.meta;
    m.path = base.path;
    m.format = base.format;
    m.storage = base.storage;  // unadapted tensors keep viewing the base model's data
    ThreadPool pool(ThreadPool::default_threads());
    for (const Tensor& t : base.tensors) {
        const Tensor* a = adapter.find(t.name + ".lora_a");
        const Tensor* b = adapter.find(t.name + ".lora_b");
        if (!a || !b) {
            m.add(t);
            continue;
        }
        const int64_t out = t.shape[0], in = t.cols(), r = a->shape[0];
        if (a->shape[1] != in || b->shape[0] != out || b->shape[1] != r) throw_bad_input("the adapter's shapes for '%s' do not fit the model", t.name.c_str());
        std::vector<float> W(static_cast<size_t>(out * in)), A(static_cast<size_t>(a->numel())), B(static_cast<size_t>(b->numel())), D(W.size());
        convert_to_f32(t.dtype, t.data, W.data(), W.size());
        convert_to_f32(a->dtype, a->data, A.data(), A.size());
        convert_to_f32(b->dtype, b->data, B.data(), B.size());
        kernels::gemm(B.data(), false, A.data(), true, D.data(), out, in, r, false, kernels::Precision::F32, pool);  // B A
        const float s = scale * alpha / static_cast<float>(r);
        for (size_t i = 0; i < W.size(); ++i) W[i] += s * D[i];
        std::vector<uint8_t> bytes(weight_type(t.dtype, "merge").row_bytes(static_cast<int64_t>(W.size())));
        convert_from_f32(t.dtype, W.data(), bytes.data(), W.size());
        m.add(m.own(t.name, t.dtype, t.shape, std::move(bytes)));
    }
    for (const Tensor& a : adapter.tensors) {
        const std::string w = a.name.substr(0, a.name.size() - 7);
        if (!base.find(w)) throw_bad_input("the adapter adapts '%s', which the model does not have", w.c_str());
    }
    return m;
}

}  // namespace llmforge
