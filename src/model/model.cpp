// Model: lookup and checks, repacking for the CPU, LoRA merging. (Reading and writing files: src/formats.)
#include "llmforge/model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/kernels.h"
#include "core/mmap_file.h"
#include "core/quants.h"
#include "core/threadpool.h"
#include "core/weight_types.h"
#include "llmforge/error.h"

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

Model Model::shell() const {
    Model m;
    m.config = config;
    m.vocab = vocab;
    m.meta = meta;
    m.path = path;
    m.format = format;
    m.storage = storage;
    m.mapped_files = mapped_files;
    return m;
}

bool Model::in_mapped_file(const void* p, size_t n) const {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    for (const auto& [data, size] : mapped_files)
        if (b >= data && b + n <= data + size) return true;
    return false;
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

Tensor Model::own_uninit(const std::string& name, DType dtype, std::vector<int64_t> shape, size_t nbytes) {
    std::shared_ptr<void> buf = alloc_huge_pages(nbytes);
    owned_bytes += nbytes;
    Tensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = buf.get();
    storage.push_back(std::move(buf));
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
            throw_bad_input("'%s': tensor '%s' has type %s, which is not supported (f32, f16, bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K…Q6_K, IQ4_NL and IQ4_XS are)",
                            path.c_str(), name.c_str(), dtype_name(t.dtype));
        if (reinterpret_cast<uintptr_t>(t.data) % weight_type(t.dtype, "check").alignment() != 0)
            throw_bad_input("'%s': tensor '%s' data is misaligned", path.c_str(), name.c_str());
    }
}

static bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

int repack_for_cpu(Model& m, ThreadPool& pool, bool float_panels) {
    static const bool panels_off = [] {
        const char* v = std::getenv("LLMFORGE_PANELS");
        return v && *v == '0';
    }();
    const bool panels = float_panels && !panels_off;
    const bool untied = m.find("output.weight") != nullptr;
    int n = 0;
    for (Tensor& t : m.tensors) {
        const bool product_only = (t.name.rfind("blk.", 0) == 0 && ends_with(t.name, ".weight")) || (untied && t.name == "output.weight");
        if (!product_only || t.shape.size() != 2 || t.layout != Tensor::Layout::Rows) continue;
        const int64_t rows = t.shape[0], cols = t.shape[1];
        const bool mapped = m.in_mapped_file(t.data, t.nbytes());  // the file's pages: never written
        if (t.dtype == DType::F32 || t.dtype == DType::F16) {  // panels: from a mapping into memory of its own, else in place
            const bool f32 = t.dtype == DType::F32;
            if (!panels || !(f32 ? kernels::has_panel_kernels() : kernels::has_f16_panel_kernels()) || rows % kernels::kPanelRows != 0) continue;
            void* dst = const_cast<void*>(t.data);
            if (mapped) dst = const_cast<void*>(m.own_uninit(t.name, t.dtype, t.shape, t.nbytes()).data);
            if (f32) kernels::pack_panels(static_cast<const float*>(t.data), static_cast<float*>(dst), rows, cols, pool);
            else kernels::pack_panels_f16(static_cast<const uint16_t*>(t.data), static_cast<uint16_t*>(dst), rows, cols, pool);
            if (mapped) {
                release_mapped_range(t.data, t.nbytes());
                m.mapped_bytes -= std::min(m.mapped_bytes, t.nbytes());
                t.data = dst;
            }
            t.layout = Tensor::Layout::Panels;
            ++n;
            continue;
        }
        const WeightType* wt = find_weight_type(t.dtype);
        if (!wt || !wt->interleavable(rows, cols)) continue;
        // interleaved into memory of its own (as llama.cpp repacks Q4_0 even from a mapped file), or in place, eight
        // rows at a time, where the model's bytes are its own
        const size_t group = 8 * wt->row_bytes(cols);
        if (mapped) {
            const Tensor moved = m.own_uninit(t.name, t.dtype, t.shape, t.nbytes());
            uint8_t* dst = static_cast<uint8_t*>(const_cast<void*>(moved.data));
            const uint8_t* src = static_cast<const uint8_t*>(t.data);
            pool.parallel_for(rows / 8, [&](int64_t g0, int64_t g1) {
                for (int64_t g = g0; g < g1; ++g) wt->interleave(src + g * group, dst + g * group, 8, cols);
            });
            release_mapped_range(t.data, t.nbytes());
            t.data = moved.data;
            m.mapped_bytes -= std::min(m.mapped_bytes, t.nbytes());  // its pages are no longer read
        } else {
            uint8_t* data = static_cast<uint8_t*>(const_cast<void*>(t.data));
            pool.parallel_for(rows / 8, [&](int64_t g0, int64_t g1) {
                std::vector<uint8_t> tmp(group);
                for (int64_t g = g0; g < g1; ++g) {
                    std::memcpy(tmp.data(), data + g * group, group);
                    wt->interleave(tmp.data(), data + g * group, 8, cols);
                }
            });
        }
        t.layout = Tensor::Layout::Interleaved8;
        ++n;
    }
    return n;
}

void require_row_major(const Model& m, const char* what) {
    for (const Tensor& t : m.tensors)
        if (t.layout != Tensor::Layout::Rows)
            throw_bad_input("cannot %s: tensor '%s' is repacked for the CPU's matrix products (load the model without --no-mmap)", what, t.name.c_str());
}

Model merge_lora(const Model& base, const Model& adapter, float scale, DType merged_type) {
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
        const DType dt = merged_type != DType::Unknown ? merged_type : quant::is_quantized(t.dtype) ? DType::F16 : t.dtype;
        std::vector<uint8_t> bytes(weight_type(dt, "merge").row_bytes(static_cast<int64_t>(W.size())));
        convert_from_f32(dt, W.data(), bytes.data(), W.size());
        m.add(m.own(t.name, dt, t.shape, std::move(bytes)));
    }
    for (const Tensor& a : adapter.tensors) {
        const std::string w = a.name.substr(0, a.name.size() - 7);
        if (!base.find(w)) throw_bad_input("the adapter adapts '%s', which the model does not have", w.c_str());
    }
    return m;
}

}  // namespace llmforge
