#include "llmforge/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/ggml_math.h"
#include "core/kernels_impl.h"
#include "llmforge/error.h"

namespace llmforge::kernels {

#if defined(LLMFORGE_X86)
namespace detail {  // gemm_avx512.cpp (AVX512-BF16)
void round_to_bf16_avx512(const float* x, uint16_t* y, int64_t n);
void rowwise_bf16_dp(const uint16_t* W, const uint16_t* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
}  // namespace detail
#endif

// ---------------------------------------------------------------- portable fallback
namespace {
template <class T, float (*AT)(const T*, int64_t)>
float dot_scalar(const T* w, const float* x, int64_t n) {
    float s = 0.f;
    for (int64_t i = 0; i < n; ++i) s += AT(w, i) * x[i];
    return s;
}
float at_f32(const float* p, int64_t i) { return p[i]; }
float at_f16(const uint16_t* p, int64_t i) { return f16_to_f32(p[i]); }
float at_bf16(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }
void cvt_f16_scalar(const uint16_t* s, float* d, int64_t n) { for (int64_t i = 0; i < n; ++i) d[i] = f16_to_f32(s[i]); }
void cvt_bf16_scalar(const uint16_t* s, float* d, int64_t n) { for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]); }
float dot_f16_acc64_scalar(const uint16_t* k, const float* q, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(f16_to_f32(k[i]) * q[i]);
    return static_cast<float>(s);
}
void axpy_f16_acc64_scalar(double* acc, float p, const uint16_t* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(p * f16_to_f32(v[i]));
}
template <class T, float (*AT)(const T*, int64_t)>
void gemm_scalar(const void* Wv, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    const T* W = static_cast<const T*>(Wv);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t r = r0; r < r1; ++r) Y[i * rows + r] = dot_scalar<T, AT>(W + r * K, X + i * K, K);
}
float dot_f16_f16_scalar(const uint16_t* w, const uint16_t* x, int64_t n) {
    float s = 0.f;
    for (int64_t i = 0; i < n; ++i) s += f16_to_f32(w[i]) * f16_to_f32(x[i]);
    return s;
}
void to_f16_scalar(const float* x, uint16_t* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]); }
void tanh_scalar(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]); }
double exp_shift_sum_scalar(const float* x, float* y, int64_t n, float shift) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += y[i] = std::exp(x[i] - shift);
    return s;
}

}  // namespace

const KernelTable* table_scalar() {
    static const KernelTable t = {
        "scalar",
        dot_scalar<float, at_f32>, dot_scalar<uint16_t, at_f16>, dot_scalar<uint16_t, at_bf16>,
        cvt_f16_scalar, cvt_bf16_scalar,
        dot_f16_acc64_scalar, axpy_f16_acc64_scalar,
        dot_scalar<float, at_f32>, dot_scalar<uint16_t, at_f16>, dot_scalar<uint16_t, at_bf16>, 1,
        gemm_scalar<float, at_f32>, gemm_scalar<uint16_t, at_f16>, gemm_scalar<uint16_t, at_bf16>,
        nullptr, nullptr,
        nullptr, nullptr, nullptr,
        ggml::rope_rows,
        tanh_scalar, exp_shift_sum_scalar,
        dot_f16_f16_scalar, to_f16_scalar,
        gemm_scalar<float, at_f32>, gemm_scalar<uint16_t, at_f16>, gemm_scalar<uint16_t, at_bf16>,
        nullptr, nullptr,
    };
    return &t;
}

namespace {
const KernelTable* detect() {
#if defined(LLMFORGE_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return table_avx512();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return table_avx2();
#endif
    return table_scalar();
}
const KernelTable* g_active = nullptr;
}  // namespace

const KernelTable& active() {
    if (!g_active) {
        g_active = detect();
        // LLMFORGE_ISA=avx2|scalar forces a narrower instruction set (to test or compare the other code paths).
        if (const char* want = std::getenv("LLMFORGE_ISA"); want && *want && !set_isa(want))
            std::fprintf(stderr, "llmforge: LLMFORGE_ISA=%s is not available on this CPU; using %s\n", want, g_active->name);
    }
    return *g_active;
}

const char* isa_name() { return active().name; }

bool set_isa(const char* name) {
    std::string n = name;
    if (n == "scalar") { g_active = table_scalar(); return true; }
#if defined(LLMFORGE_X86)
    __builtin_cpu_init();
    if (n == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { g_active = table_avx2(); return true; }
    if (n == "avx512" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) { g_active = table_avx512(); return true; }
#endif
    return false;
}

float dot_f16_acc64(const uint16_t* k, const float* q, int64_t n) { return active().dot_f16_acc64(k, q, n); }
void axpy_f16_acc64(double* acc, float p, const uint16_t* v, int64_t n) { active().axpy_f16_acc64(acc, p, v, n); }

void tanh(const float* x, float* y, int64_t n) { active().tanh(x, y, n); }
double exp_shift_sum(const float* x, float* y, int64_t n, float shift) { return active().exp_shift_sum(x, y, n, shift); }

float dot(DType wt, const void* w, const float* x, int64_t n) {
    const KernelTable& k = active();
    switch (wt) {
        case DType::F32: return k.dot_f32(static_cast<const float*>(w), x, n);
        case DType::F16: return k.dot_f16(static_cast<const uint16_t*>(w), x, n);
        case DType::BF16: return k.dot_bf16(static_cast<const uint16_t*>(w), x, n);
        default: throw_runtime("dot: weight type %s is not supported by the CPU kernels", dtype_name(wt));
    }
}

// Rows [r0, r1) of y = W x, one row after the other: a single sequential stream per thread is what the hardware
// prefetchers follow best (measured: 48 GB/s against 34 GB/s when four rows are interleaved).
static void matvec_rows(DType wt, const void* W, const float* x, float* y, int64_t r0, int64_t r1, int64_t cols) {
    const KernelTable& k = active();
    int64_t r = r0;
    switch (wt) {
        case DType::F32: {
            const float* w = static_cast<const float*>(W);
            for (; r < r1; ++r) y[r] = k.dot_f32(w + r * cols, x, cols);
            break;
        }
        case DType::F16: {
            const uint16_t* w = static_cast<const uint16_t*>(W);
            for (; r < r1; ++r) y[r] = k.dot_f16(w + r * cols, x, cols);
            break;
        }
        case DType::BF16: {
            const uint16_t* w = static_cast<const uint16_t*>(W);
            for (; r < r1; ++r) y[r] = k.dot_bf16(w + r * cols, x, cols);
            break;
        }
        default: throw_runtime("matvec: weight type %s is not supported by the CPU kernels", dtype_name(wt));
    }
}

void matvec(DType wt, const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (!dtype_supported(wt)) throw_runtime("matvec: weight type %s is not supported by the CPU kernels", dtype_name(wt));
    // Split rows into blocks of 4 per thread, so each thread streams a contiguous slab of the weight matrix.
    // One contiguous range of rows per thread: a long sequential stream each (measured: handing out 64 KiB pieces
    // dynamically cut f16 decoding from 18 to 13 tokens/s, as every piece restarts the prefetchers).
    if (wt == DType::F16) {
        // As llama.cpp does (vec_dot_type f16): x rounded to f16 once, then f16 · f16 products; half the activation
        // bytes per product make the memory-bound loop faster (TinyLlama-1.1B f16 decoding 13.5 -> 17.5 tokens/s).
        const KernelTable& k = active();
        thread_local std::vector<uint16_t> xh_buf;
        if (static_cast<int64_t>(xh_buf.size()) < cols) xh_buf.resize(cols);
        uint16_t* xh = xh_buf.data();  // the calling thread's buffer (a thread_local named in the lambda would be each worker's)
        k.to_f16(x, xh, cols);
        const uint16_t* w = static_cast<const uint16_t*>(W);
        pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) y[r] = k.dot_f16_f16(w + r * cols, xh, cols);
        });
        return;
    }
    // bf16: x rounded to bf16 as llama.cpp does (vec_dot_type bf16), the lone-row form of matmul_rowwise
    if (wt == DType::BF16) return matmul_rowwise(wt, W, x, y, 1, rows, cols, pool);
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) { matvec_rows(wt, W, x, y, r0, r1, cols); });
}

void matmul_rowwise(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (!dtype_supported(wt)) throw_runtime("matmul: weight type %s is not supported by the CPU kernels", dtype_name(wt));
    const KernelTable& k = active();
    auto* f = wt == DType::F32 ? k.gemm_seq_f32 : wt == DType::F16 ? k.gemm_seq_f16 : k.gemm_seq_bf16;
    // 16-bit weights multiply the activations rounded to their type, as llama.cpp's do (its vec_dot_type for f16 and
    // bf16), whatever n is (so still batch-invariant; each value is rounded on its own, so the rounding never depends
    // on n). bf16 with AVX512-BF16: vdpbf16ps on the bf16 activations (twice the f32 FMA rate: the batched decoding
    // steps of a server are compute-bound). Otherwise the rounded activations go through the f32-accumulating kernel
    // (f16: a lone row then loads them as f16, half the bytes). (The calling thread's buffers; the workers read them.)
#if defined(LLMFORGE_X86)
    if (wt == DType::BF16 && has_native_bf16()) {
        thread_local std::vector<uint16_t> xb;
        xb.resize(static_cast<size_t>(n * cols));
        for (int64_t i = 0; i < n; ++i) detail::round_to_bf16_avx512(X + i * cols, xb.data() + i * cols, cols);
        const uint16_t* xp = xb.data();
        const int64_t groups = (rows + 3) / 4;
        pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
            detail::rowwise_bf16_dp(static_cast<const uint16_t*>(W), xp, Y, n, rows, cols, g0 * 4, std::min(rows, g1 * 4));
        });
        return;
    }
#endif
    if (wt != DType::F32) {
        thread_local std::vector<float> xr;
        xr.assign(X, X + n * cols);
        if (wt == DType::BF16)
            for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
        else if (k.round_f16)
            k.round_f16(xr.data(), n * cols);
        else
            for (float& v : xr) v = f16_to_f32(f32_to_f16(v));
        X = xr.data();
    }
    // contiguous ranges of rows, in groups of 4 (the tile height), one range per thread
    const int64_t groups = (rows + 3) / 4;
    pool.parallel_for(groups, [&](int64_t g0, int64_t g1) { f(W, X, Y, n, rows, cols, g0 * 4, std::min(rows, g1 * 4)); });
}

static constexpr int64_t kSeqMaxRowsF32 = 32;
// LLMFORGE_SEQ_MAX_ROWS overrides the f16/bf16 threshold (for measuring the two paths side by side).
static const int64_t kSeqMaxRows = [] {
    const char* v = std::getenv("LLMFORGE_SEQ_MAX_ROWS");
    return v && *v ? std::max<int64_t>(1, std::atoll(v)) : int64_t{128};
}();

void matmul(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (n == 1) {
        matvec(wt, W, X, Y, rows, cols, pool);
        return;
    }
    // Up to a few dozen rows the register-tiled dot products (dot_seq's order: one accumulator per product, as llama.cpp's
    // prompt pass sums a length that is a multiple of the vector width) beat packing: measured on a 5632 × 2048 matrix,
    // 2 threads, f16 185 GFLOP/s against the GEMM's 110 at n = 16 and still ahead at 128; f32 ahead up to n = 32.
    if (n <= (wt == DType::F32 ? kSeqMaxRowsF32 : kSeqMaxRows)) return matmul_rowwise(wt, W, X, Y, n, rows, cols, pool);
    if (!dtype_supported(wt)) throw_runtime("matmul: weight type %s is not supported by the CPU kernels", dtype_name(wt));
    const KernelTable& k = active();
    auto* gemm = wt == DType::F32 ? k.gemm_f32 : wt == DType::F16 ? k.gemm_f16 : k.gemm_bf16;
    // Each thread takes a contiguous range of weight rows (in panels of 32) for all n activation rows.
    const int64_t groups = (rows + 31) / 32;
    pool.parallel_for(groups, [&](int64_t g0, int64_t g1) { gemm(W, X, Y, n, rows, cols, g0 * 32, std::min(rows, g1 * 32)); });
}

// ---------------------------------------------------------------- panel-layout f32 weights
void pack_panels(float* W, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (rows % kPanelRows != 0) throw_runtime("pack_panels: %lld rows are not a multiple of %lld", (long long)rows, (long long)kPanelRows);
    pool.parallel_for(rows / kPanelRows, [&](int64_t p0, int64_t p1) {
        std::vector<float> tmp(static_cast<size_t>(kPanelRows * cols));
        for (int64_t p = p0; p < p1; ++p) {
            float* panel = W + p * kPanelRows * cols;  // rows 32p.. as 32 × cols, the same bytes as the packed panel
            std::copy_n(panel, kPanelRows * cols, tmp.data());
            for (int64_t k0 = 0; k0 < cols; k0 += 64)  // in blocks of 64 columns, so the 32 source rows stay in cache
                for (int64_t j = 0; j < kPanelRows; ++j)
                    for (int64_t k = k0; k < std::min(cols, k0 + 64); ++k) panel[k * kPanelRows + j] = tmp[static_cast<size_t>(j * cols + k)];
        }
    });
}

bool has_panel_kernels() { return active().gemm_panels_f32 != nullptr && active().matvec_panels_f32 != nullptr; }

namespace {
// The panel products in portable code, in the order the SIMD kernels sum (see kernels.h): per chunk one fused
// multiply-add chain from zero, the chunks added in turn.
void panels_portable(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    for (int64_t i = 0; i < n; ++i)
        for (int64_t r = r0; r < r1; ++r) {
            const float* w = Wp + (r / kPanelRows) * kPanelRows * K + r % kPanelRows;
            const float* x = X + i * K;
            float y = 0.0f;
            for (int64_t k0 = 0; k0 < K; k0 += kPanelK) {
                float s = 0.0f;
                for (int64_t k = k0; k < std::min(K, k0 + kPanelK); ++k) s = std::fma(x[k], w[k * kPanelRows], s);
                y = k0 == 0 ? s : y + s;
            }
            Y[i * rows + r] = y;
        }
}
}  // namespace

void matmul_panels(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (rows % kPanelRows != 0) throw_runtime("matmul_panels: %lld rows are not a multiple of %lld", (long long)rows, (long long)kPanelRows);
    if (n <= 0 || rows == 0) return;
    const KernelTable& k = active();
    // one contiguous range of panels per thread: each streams its part of the matrix once
    pool.parallel_for(rows / kPanelRows, [&](int64_t p0, int64_t p1) {
        const int64_t r0 = p0 * kPanelRows, r1 = p1 * kPanelRows;
        if (!k.gemm_panels_f32) panels_portable(Wp, X, Y, n, rows, cols, r0, r1);
        else if (n == 1) k.matvec_panels_f32(Wp, X, Y, cols, r0, r1);
        else k.gemm_panels_f32(Wp, X, Y, n, rows, cols, r0, r1);
    });
}

namespace {
// Reads f16 weights as floats for ggml_math.h's scalar forms.
struct F16Reader {
    const uint16_t* p;
    float operator[](int64_t i) const { return f16_to_f32(p[i]); }
};
}  // namespace

void matmul_ggml(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (wt != DType::F32 && wt != DType::F16) return matmul(wt, W, X, Y, n, rows, cols, pool);
    const KernelTable& k = active();
    // ggml multiplies f16 weights with activations converted to f16 (its vec_dot_type)
    thread_local std::vector<float> xr;
    if (n == 1) return matvec(wt, W, X, Y, rows, cols, pool);  // decoding: ggml_vec_dot order (f16: x rounded to f16)
    if (wt == DType::F16) {
        xr.assign(X, X + n * cols);
        if (k.round_f16) k.round_f16(xr.data(), n * cols);
        else
            for (float& v : xr) v = f16_to_f32(f32_to_f16(v));
        X = xr.data();
    }
    if (cols % ggml::kLanes == 0 && rows % 4 == 0) {  // llamafile's tinyBLAS takes it
        auto* tb = wt == DType::F32 ? k.gemm_tinyblas_f32 : k.gemm_tinyblas_f16;
        const int64_t groups = rows / 4;
        pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
            if (tb) {
                tb(W, X, Y, n, rows, cols, g0 * 4, g1 * 4);
            } else {
                for (int64_t r = g0 * 4; r < g1 * 4; ++r)
                    for (int64_t i = 0; i < n; ++i)
                        Y[i * rows + r] = wt == DType::F32 ? ggml::dot_tinyblas(static_cast<const float*>(W) + r * cols, X + i * cols, cols)
                                                           : ggml::dot_tinyblas(F16Reader{static_cast<const uint16_t*>(W) + r * cols}, X + i * cols, cols);
            }
        });
        return;
    }
    // ggml's own matrix product: ggml_vec_dot_f32 / _f16 per output (dot_f32 / dot_f16 where vectors have 16 lanes)
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t i = 0; i < n; ++i) {
                float& y = Y[i * rows + r];
                if (wt == DType::F32) {
                    const float* w = static_cast<const float*>(W) + r * cols;
                    y = k.vec_width == ggml::kLanes ? k.dot_f32(w, X + i * cols, cols) : ggml::dot_vec<false>(w, X + i * cols, cols);
                } else {
                    const uint16_t* w = static_cast<const uint16_t*>(W) + r * cols;
                    y = k.vec_width == ggml::kLanes ? k.dot_f16(w, X + i * cols, cols) : ggml::dot_vec<true>(F16Reader{w}, X + i * cols, cols);
                }
            }
    });
}

}  // namespace llmforge::kernels

namespace llmforge {

void convert_f16_to_f32(const uint16_t* src, float* dst, size_t n) { kernels::active().cvt_f16(src, dst, static_cast<int64_t>(n)); }
void convert_bf16_to_f32(const uint16_t* src, float* dst, size_t n) { kernels::active().cvt_bf16(src, dst, static_cast<int64_t>(n)); }
void convert_f32_to_f16(const float* src, uint16_t* dst, size_t n) { for (size_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]); }
void convert_f32_to_bf16(const float* src, uint16_t* dst, size_t n) { for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]); }

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
    switch (t) {
        case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
        case DType::F16: convert_f16_to_f32(static_cast<const uint16_t*>(src), dst, n); return;
        case DType::BF16: convert_bf16_to_f32(static_cast<const uint16_t*>(src), dst, n); return;
        default: throw_runtime("cannot convert %s to f32: type not supported yet", dtype_name(t));
    }
}

void convert_from_f32(DType t, const float* src, void* dst, size_t n) {
    switch (t) {
        case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
        case DType::F16: convert_f32_to_f16(src, static_cast<uint16_t*>(dst), n); return;
        case DType::BF16: convert_f32_to_bf16(src, static_cast<uint16_t*>(dst), n); return;
        default: throw_runtime("cannot convert f32 to %s: type not supported yet", dtype_name(t));
    }
}

}  // namespace llmforge
