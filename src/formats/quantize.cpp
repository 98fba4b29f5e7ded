// Quantising a model file (see llmforge/quantize.h): the per-tensor type rules of llama-quantize, the importance
// matrix file, and the GGUF written tensor by tensor.
#include "llmforge/quantize.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <set>

#include "core/mmap_file.h"
#include "core/progress.h"
#include "core/quants.h"
#include "core/threadpool.h"
#include "core/weight_types.h"
#include "formats/formats.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/log.h"
#include "llmforge/model.h"

namespace llmforge {

// ---- the importance matrix file -------------------------------------------------------------------------------------

std::vector<float> ImportanceMatrix::importance(const std::string& tensor) const {
    auto it = entries.find(tensor);
    if (it == entries.end()) return {};
    std::vector<float> w = it->second.sums;
    if (it->second.ncall > 0)
        for (float& v : w) v /= static_cast<float>(it->second.ncall);
    return w;
}

ImportanceMatrix read_imatrix(const std::string& path) {
    if (!file_exists(path)) throw_bad_input("importance matrix '%s' does not exist", path.c_str());
    auto f = MappedFile::open(path);
    const uint8_t* p = f->data();
    const size_t size = f->size();
    size_t off = 0;
    auto need = [&](size_t n, const char* what) {
        if (size - off < n) throw_bad_input("importance matrix '%s' is truncated (reading %s at byte %zu)", path.c_str(), what, off);
    };
    auto i32 = [&](const char* what) {
        need(4, what);
        int32_t v;
        std::memcpy(&v, p + off, 4);
        off += 4;
        return v;
    };
    ImportanceMatrix m;
    const int32_t n = i32("the entry count");
    if (n < 1) throw_bad_input("importance matrix '%s' has no entries", path.c_str());
    for (int32_t e = 0; e < n; ++e) {
        const int32_t len = i32("a name length");
        if (len < 1 || len > 4096) throw_bad_input("importance matrix '%s': entry %d has a name of %d bytes", path.c_str(), e + 1, len);
        need(static_cast<size_t>(len), "a name");
        std::string name(reinterpret_cast<const char*>(p + off), static_cast<size_t>(len));
        off += static_cast<size_t>(len);
        ImportanceMatrix::Entry en;
        en.ncall = i32("a call count");
        const int32_t nval = i32("a value count");
        if (nval < 1) throw_bad_input("importance matrix '%s': entry '%s' has %d values", path.c_str(), name.c_str(), nval);
        need(static_cast<size_t>(nval) * 4, "values");
        en.sums.resize(static_cast<size_t>(nval));
        std::memcpy(en.sums.data(), p + off, static_cast<size_t>(nval) * 4);
        off += static_cast<size_t>(nval) * 4;
        for (float v : en.sums)
            if (!std::isfinite(v)) throw_bad_input("importance matrix '%s': entry '%s' holds a value that is not finite", path.c_str(), name.c_str());
        m.entries[name] = std::move(en);
    }
    if (off < size) {  // newer files: the chunk count and the dataset's name
        m.chunks = i32("the chunk count");
        const int32_t len = i32("the dataset name's length");
        if (len < 0) throw_bad_input("importance matrix '%s': a dataset name of %d bytes", path.c_str(), len);
        need(static_cast<size_t>(len), "the dataset name");
        m.dataset.assign(reinterpret_cast<const char*>(p + off), static_cast<size_t>(len));
        off += static_cast<size_t>(len);
    }
    if (off != size) throw_bad_input("importance matrix '%s' has %zu bytes after its last entry", path.c_str(), size - off);
    return m;
}

void write_imatrix(const ImportanceMatrix& m, const std::string& path) {
    AtomicWriter w(path);
    auto i32 = [&](int32_t v) { w.write(&v, 4); };
    i32(static_cast<int32_t>(m.entries.size()));
    for (const auto& [name, e] : m.entries) {
        i32(static_cast<int32_t>(name.size()));
        w.write(name.data(), name.size());
        i32(e.ncall);
        i32(static_cast<int32_t>(e.sums.size()));
        w.write(e.sums.data(), e.sums.size() * 4);
    }
    i32(m.chunks);
    i32(static_cast<int32_t>(m.dataset.size()));
    w.write(m.dataset.data(), m.dataset.size());
    w.commit();
}

// ---- the types ------------------------------------------------------------------------------------------------------

namespace {
// llama_ftype numbers (llama.h)
enum Ftype : uint32_t {
    kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_S = 11, kQ3_K_M = 12,
    kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18, kQ2_K_S = 21, kIQ4_NL = 25, kIQ4_XS = 30, kBF16 = 32,
};
}  // namespace

const std::vector<QuantMix>& quant_mixes() {
    static const std::vector<QuantMix> mixes = {
        {"Q4_0", kQ4_0, DType::Q4_0},     {"Q4_1", kQ4_1, DType::Q4_1},     {"Q5_0", kQ5_0, DType::Q5_0},
        {"Q5_1", kQ5_1, DType::Q5_1},     {"Q8_0", kQ8_0, DType::Q8_0},     {"Q2_K", kQ2_K, DType::Q2_K},
        {"Q2_K_S", kQ2_K_S, DType::Q2_K}, {"Q3_K_S", kQ3_K_S, DType::Q3_K}, {"Q3_K_M", kQ3_K_M, DType::Q3_K},
        {"Q3_K", kQ3_K_M, DType::Q3_K},   {"Q3_K_L", kQ3_K_L, DType::Q3_K}, {"Q4_K_S", kQ4_K_S, DType::Q4_K},
        {"Q4_K_M", kQ4_K_M, DType::Q4_K}, {"Q4_K", kQ4_K_M, DType::Q4_K},   {"Q5_K_S", kQ5_K_S, DType::Q5_K},
        {"Q5_K_M", kQ5_K_M, DType::Q5_K}, {"Q5_K", kQ5_K_M, DType::Q5_K},   {"Q6_K", kQ6_K, DType::Q6_K},
        {"IQ4_NL", kIQ4_NL, DType::IQ4_NL}, {"IQ4_XS", kIQ4_XS, DType::IQ4_XS},
        {"F16", kF16, DType::F16},        {"BF16", kBF16, DType::BF16},     {"F32", kF32, DType::F32},
    };
    return mixes;
}

const QuantMix* find_quant_mix(const std::string& name) {
    std::string up = name;
    for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const QuantMix& m : quant_mixes())
        if (m.name == up) return &m;
    return nullptr;
}

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// llama.cpp's loader orders tensors by layer (non-layer tensors first), then by name; llama-quantize writes them so,
// and its per-layer counters below advance in that order.
int layer_of(const std::string& name) {
    int l = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &l) != 1) return -1;
    return l;
}
bool loader_order(const Tensor& a, const Tensor& b) {
    const int la = layer_of(a.name), lb = layer_of(b.name);
    return la != lb ? la < lb : a.name < b.name;
}

// Whether llama-quantize quantises a tensor at all: 2-D (or more) weights, not norms, gates of experts or position
// and token-type embeddings.
bool quantizable(const Tensor& t) {
    int dims = static_cast<int>(t.shape.size());
    while (dims > 1 && t.shape[static_cast<size_t>(static_cast<int>(t.shape.size()) - dims)] == 1) --dims;  // ggml_n_dims ignores outer 1s
    const std::string& n = t.name;
    return ends_with(n, "weight") && dims >= 2 && !contains(n, "_norm.weight") && !contains(n, "ffn_gate_inp.weight") &&
           n != "position_embd.weight" && n != "token_types.weight" && !contains(n, "ssm_conv1d.weight") &&
           !contains(n, "attn_rel_b.weight");
}

// The mix rules (llama_tensor_get_type) for the types above.
class MixRules {
public:
    MixRules(uint32_t ftype, const std::vector<Tensor>& tensors, const gguf::Metadata& meta, bool has_imatrix)
        : ftype_(ftype), has_imatrix_(has_imatrix) {
        const std::string arch = meta.get_string("general.architecture", "");
        n_layer_ = static_cast<int>(meta.get_int(arch + ".block_count", 0));
        const int64_t n_head = meta.get_int(arch + ".attention.head_count", 0);
        const int64_t n_head_kv = meta.get_int(arch + ".attention.head_count_kv", n_head);
        n_gqa_ = n_head_kv > 0 ? n_head / n_head_kv : 1;
        // llama.cpp's LLM_TYPE_70B: an 80-layer LLaMA with grouped-query attention
        is_70b_ = arch == "llama" && n_layer_ == 80 && n_head != n_head_kv;
        for (const Tensor& t : tensors) {
            if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight") || contains(t.name, "attn_kv_b.weight")) ++n_attn_v_;
            else if (t.name == "output.weight") has_output_ = true;
        }
    }

    DType choose(const Tensor& t, DType type, DType output_type, DType token_type) {
        const std::string& name = t.name;
        const int64_t cols = t.cols();
        auto more_bits = [](int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; };
        if (name == "output.weight" || (!has_output_ && name == "token_embd.weight")) {
            if (output_type != DType::Unknown) type = output_type;
            else if (cols % quant::block_elems(type) != 0) type = DType::Q8_0;
            else if (type != DType::Q8_0) type = DType::Q6_K;
        } else if (name == "token_embd.weight") {
            if (token_type != DType::Unknown) type = token_type;
        } else if (contains(name, "attn_v.weight")) {
            if (ftype_ == kQ2_K) type = n_gqa_ >= 4 ? DType::Q4_K : DType::Q3_K;
            else if (ftype_ == kQ2_K_S && n_gqa_ >= 4) type = DType::Q4_K;
            else if (ftype_ == kQ3_K_M) type = i_attn_v_ < 2 ? DType::Q5_K : DType::Q4_K;
            else if (ftype_ == kQ3_K_L) type = DType::Q5_K;
            else if ((ftype_ == kIQ4_NL || ftype_ == kIQ4_XS) && n_gqa_ >= 4) type = DType::Q5_K;
            else if ((ftype_ == kQ4_K_M || ftype_ == kQ5_K_M) && more_bits(i_attn_v_, n_attn_v_)) type = DType::Q6_K;
            else if (ftype_ == kQ4_K_S && i_attn_v_ < 4) type = DType::Q5_K;
            if (is_70b_ && (type == DType::Q3_K || type == DType::Q4_K)) type = DType::Q5_K;
            ++i_attn_v_;
        } else if (contains(name, "attn_k.weight") || contains(name, "attn_q.weight")) {
            // (only the IQ mixes and 8-expert models change these)
        } else if (contains(name, "ffn_down")) {
            const int i = i_ffn_down_, n = n_layer_;
            if (ftype_ == kQ2_K) type = DType::Q3_K;
            else if (ftype_ == kQ2_K_S) { if (i < n / 8) type = DType::Q4_K; }
            else if (ftype_ == kQ3_K_M) type = i < n / 16 ? DType::Q5_K : DType::Q4_K;
            else if (ftype_ == kQ3_K_L) type = DType::Q5_K;
            else if (ftype_ == kQ4_K_M) { if (more_bits(i, n)) type = DType::Q6_K; }
            else if (i < n / 8 && (ftype_ == kIQ4_NL || ftype_ == kIQ4_XS) && !has_imatrix_) type = DType::Q5_K;
            else if (ftype_ == kQ5_K_M && more_bits(i, n)) type = DType::Q6_K;
            else if (ftype_ == kQ4_K_S && i < n / 8) type = DType::Q5_K;
            else if ((ftype_ == kQ4_0 || ftype_ == kQ5_0) && has_imatrix_ && i < n / 8)
                type = ftype_ == kQ4_0 ? DType::Q4_1 : DType::Q5_1;  // llama.cpp's guard for the first ffn_down layers
            ++i_ffn_down_;
        } else if (contains(name, "attn_output.weight")) {
            if (ftype_ == kQ2_K) type = DType::Q3_K;
            else if (ftype_ == kQ3_K_M) type = DType::Q4_K;
            else if (ftype_ == kQ3_K_L) type = DType::Q5_K;
        } else if (contains(name, "attn_qkv.weight")) {
            if (ftype_ == kQ3_K_M || ftype_ == kQ3_K_L) type = DType::Q4_K;
            else if (ftype_ == kQ4_K_M) type = DType::Q5_K;
            else if (ftype_ == kQ5_K_M) type = DType::Q6_K;
        }
        // rows that do not split into the type's blocks: llama.cpp's fallbacks
        if (quant::is_quantized(type) && cols % quant::block_elems(type) != 0) {
            DType fb;
            switch (type) {
                case DType::Q4_K: fb = DType::Q5_0; break;
                case DType::Q5_K: fb = DType::Q5_1; break;
                case DType::Q6_K: fb = DType::Q8_0; break;
                case DType::Q2_K: case DType::Q3_K: case DType::IQ4_XS: fb = DType::IQ4_NL; break;
                default:
                    throw_bad_input("quantize: tensor '%s': rows of %lld values do not split into %s's blocks of %lld", name.c_str(),
                                    static_cast<long long>(cols), dtype_name(type), static_cast<long long>(quant::block_elems(type)));
            }
            if (cols % quant::block_elems(fb) != 0) fb = DType::F16;
            log_line("llmforge: %s: rows of %lld values are not a multiple of %lld: %s instead of %s", name.c_str(),
                     static_cast<long long>(cols), static_cast<long long>(quant::block_elems(type)), dtype_name(fb), dtype_name(type));
            type = fb;
        }
        return type;
    }

private:
    uint32_t ftype_;
    bool has_imatrix_, has_output_ = false, is_70b_ = false;
    int n_layer_ = 0, n_attn_v_ = 0, i_attn_v_ = 0, i_ffn_down_ = 0;
    int64_t n_gqa_ = 1;
};

// A tensor's values as f32 (converted, or dequantised) for the quantisers.
std::vector<float> to_f32(const Tensor& t) {
    const size_t n = static_cast<size_t>(t.numel());
    std::vector<float> v(n);
    if (quant::is_quantized(t.dtype)) quant::dequantize(t.dtype, t.data, v.data(), static_cast<int64_t>(n));
    else weight_type(t.dtype, "quantize").to_f32(t.data, v.data(), static_cast<int64_t>(n));
    return v;
}

}  // namespace

QuantizeReport quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& opts) {
    const QuantMix* mix = find_quant_mix(opts.type);
    if (!mix) {
        std::string names;
        for (const QuantMix& m : quant_mixes()) names += (names.empty() ? "" : ", ") + m.name;
        throw_bad_input("quantize: unknown type '%s' (one of %s)", opts.type.c_str(), names.c_str());
    }
    for (DType t : {opts.output_type, opts.token_embedding_type})
        if (t != DType::Unknown && !quant::is_quantized(t) && t != DType::F32 && t != DType::F16 && t != DType::BF16)
            throw_bad_input("quantize: tensor type %s is not supported", dtype_name(t));

    // the input: a GGUF as it is (every key, every tensor), or another format through the model loader
    gguf::Metadata meta;
    std::vector<Tensor> tensors;
    gguf::File file;
    Model model, tmp;
    if (gguf::has_magic(in)) {
        file = gguf::read(in, true);
        meta = file.meta;
        tensors = file.tensors;
    } else {
        model = load_model(in);
        tensors = formats::gguf_image(model, DType::Unknown, meta, tmp);
    }
    std::stable_sort(tensors.begin(), tensors.end(), loader_order);

    ImportanceMatrix imatrix;
    const bool has_imatrix = !opts.imatrix.empty();
    if (has_imatrix) {
        imatrix = read_imatrix(opts.imatrix);
        // every entry must name a matrix of this model with its number of columns
        size_t matched = 0;
        for (const auto& [name, e] : imatrix.entries) {
            auto it = std::find_if(tensors.begin(), tensors.end(), [&name = name](const Tensor& t) { return t.name == name; });
            if (it == tensors.end()) continue;
            ++matched;
            if (static_cast<int64_t>(e.sums.size()) != it->cols() && name != "token_embd.weight")
                throw_bad_input("quantize: the importance matrix '%s' has %zu values for '%s', which has %lld columns: it was made for another model",
                                opts.imatrix.c_str(), e.sums.size(), name.c_str(), static_cast<long long>(it->cols()));
        }
        if (matched == 0)
            throw_bad_input("quantize: the importance matrix '%s' names none of the model's tensors: it was made for another model", opts.imatrix.c_str());
    }

    const bool quantizing = quant::is_quantized(mix->type);
    MixRules rules(mix->ftype, tensors, meta, has_imatrix);
    struct Plan {
        DType to;
        std::vector<float> importance;
    };
    std::vector<Plan> plan(tensors.size());
    QuantizeReport report;
    report.ftype = mix->name;
    std::vector<Tensor> out_tensors = tensors;
    double total_work = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Tensor& t = tensors[i];
        DType to = t.dtype;
        if (quantizable(t)) {
            to = mix->type;
            if (quantizing && !opts.pure) to = rules.choose(t, to, opts.output_type, opts.token_embedding_type);
            if (opts.token_embedding_type != DType::Unknown && t.name == "token_embd.weight") to = opts.token_embedding_type;
            if (opts.output_type != DType::Unknown && t.name == "output.weight") to = opts.output_type;
            if (quant::is_quantized(to) && t.cols() % quant::block_elems(to) != 0)
                throw_bad_input("quantize: tensor '%s' has rows of %lld values, not a multiple of %s's block of %lld", t.name.c_str(),
                                static_cast<long long>(t.cols()), dtype_name(to), static_cast<long long>(quant::block_elems(to)));
        }
        if (to != t.dtype) {
            if (quant::is_quantized(t.dtype) && !opts.allow_requantize)
                throw_bad_input("quantize: tensor '%s' is already %s (requantising loses more: --allow-requantize does it anyway)",
                                t.name.c_str(), dtype_name(t.dtype));
            if (!quant::is_quantized(t.dtype) && !find_weight_type(t.dtype))
                throw_bad_input("quantize: tensor '%s' has type %s, which cannot be converted", t.name.c_str(), dtype_name(t.dtype));
            if (has_imatrix && quant::is_quantized(to)) {
                plan[i].importance = imatrix.importance(t.name);
                if (!plan[i].importance.empty() && static_cast<int64_t>(plan[i].importance.size()) != t.cols()) plan[i].importance.clear();
                if (plan[i].importance.empty()) log_line("llmforge: quantize: no importance data for %s", t.name.c_str());
            }
            if (mix->ftype == kQ2_K_S && to == DType::Q2_K && t.name != "token_embd.weight" && plan[i].importance.empty())
                throw_bad_input("quantize: Q2_K_S needs an importance matrix (--imatrix) for '%s'", t.name.c_str());
            total_work += static_cast<double>(t.numel());
        }
        plan[i].to = to;
        out_tensors[i].dtype = to;
        const size_t bytes_out = dtype_row_bytes(to, t.cols()) * static_cast<size_t>(t.rows());
        report.tensors.push_back({t.name, t.shape, t.dtype, to, t.nbytes(), bytes_out, !plan[i].importance.empty()});
        report.bytes_in += t.nbytes();
        report.bytes_out += bytes_out;
        report.n_params += t.numel();
    }

    meta.set("general.quantization_version", gguf::Value::u32(2));
    meta.set("general.file_type", gguf::Value::u32(mix->ftype));
    for (const char* k : {"split.no", "split.count", "split.tensors.count"}) meta.erase(k);
    if (has_imatrix) {
        meta.set("quantize.imatrix.file", gguf::Value::str(opts.imatrix));
        if (!imatrix.dataset.empty()) meta.set("quantize.imatrix.dataset", gguf::Value::str(imatrix.dataset));
        meta.set("quantize.imatrix.entries_count", gguf::Value::i32(static_cast<int32_t>(imatrix.entries.size())));
        meta.set("quantize.imatrix.chunks_count", gguf::Value::i32(imatrix.chunks));
    }

    ThreadPool pool(opts.threads > 0 ? opts.threads : ThreadPool::default_threads());
    Progress progress("quantize", total_work, "weights", opts.progress && log_enabled());
    double done = 0;
    gguf::write_streaming(out, meta, out_tensors, [&](size_t i, AtomicWriter& w) {
        const Tensor& t = tensors[i];
        const DType to = plan[i].to;
        if (to == t.dtype) {
            w.write(t.data, t.nbytes());
            return;
        }
        const std::vector<float> x = to_f32(t);
        const int64_t cols = t.cols(), rows = t.rows();
        std::vector<uint8_t> bytes(dtype_row_bytes(to, cols) * static_cast<size_t>(rows));
        if (quant::is_quantized(to)) {
            const float* imp = plan[i].importance.empty() ? nullptr : plan[i].importance.data();
            const size_t rb = quant::row_bytes(to, cols);
            pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
                quant::quantize(to, x.data() + r0 * cols, bytes.data() + static_cast<size_t>(r0) * rb, r1 - r0, cols, imp);
            });
        } else {
            weight_type(to, "quantize").from_f32(x.data(), bytes.data(), t.numel());
        }
        w.write(bytes.data(), bytes.size());
        done += static_cast<double>(t.numel());
        progress.update(done);
    });
    progress.finish();
    return report;
}

}  // namespace llmforge
