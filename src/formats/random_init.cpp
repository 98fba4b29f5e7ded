// Random models: a model of any preset or configuration with N(0, 0.02) weights (norms 1, biases 0) and a small
// SentencePiece-style vocabulary, in memory or streamed to a GGUF file (models larger than memory).
#include "llmforge/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/mmap_file.h"
#include "core/threadpool.h"
#include "core/weight_types.h"
#include "llmforge/error.h"
#include "formats/formats.h"
#include "llmforge/gguf.h"

namespace llmforge {

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

void init_random_gguf(const ModelConfig& cfg, DType dtype, uint64_t seed, const std::string& path, const Vocab* vocab) {
    cfg.validate();
    if (vocab && vocab->size() != cfg.n_vocab) throw_bad_input("init: the vocabulary has %d tokens, the configuration %lld", vocab->size(), static_cast<long long>(cfg.n_vocab));
    if (!dtype_supported(dtype)) throw_bad_input("init: dtype must be f32, f16 or bf16");
    gguf::Metadata meta = random_meta(cfg, seed);
    config_to_gguf(cfg, meta);
    (vocab ? *vocab : byte_vocab(cfg.n_vocab)).to_gguf(meta);
    meta.set("general.file_type", gguf::Value::u32(dtype == DType::F16 ? 1u : dtype == DType::BF16 ? 32u : 0u));
    std::vector<Tensor> infos;
    for (const auto& [name, shape] : expected_tensors(cfg)) {
        Tensor t;
        t.name = name;
        t.shape = shape;
        t.dtype = formats::stored_type(name, shape, dtype);  // norms and biases stay f32, as save_model writes them
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

Model init_random(const ModelConfig& cfg, DType dtype, uint64_t seed, const Vocab* vocab) {
    cfg.validate();
    if (vocab && vocab->size() != cfg.n_vocab) throw_bad_input("init: the vocabulary has %d tokens, the configuration %lld", vocab->size(), static_cast<long long>(cfg.n_vocab));
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
    m.vocab = vocab ? *vocab : byte_vocab(cfg.n_vocab);
    m.meta = random_meta(cfg, seed);
    return m;
}

}  // namespace llmforge
