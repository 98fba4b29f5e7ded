// Model files: the format of a path (GGUF, llama2.c, safetensors), loading and saving through the format's reader and
// writer, and the tensor byte conversions the writers share.
#include "llmforge/model.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/mmap_file.h"
#include "core/threadpool.h"
#include "core/weight_types.h"
#include "formats/formats.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"

namespace llmforge {

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
    if (opts.repack) {
        ThreadPool pool(ThreadPool::default_threads());
        repack_for_cpu(m, pool, opts.float_panels);
    }
    return m;
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

DType stored_type(const std::string& name, const std::vector<int64_t>& shape, DType requested) {
    if (shape.size() == 1 || name == "token_types.weight") return DType::F32;
    return requested;
}

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

}  // namespace llmforge
