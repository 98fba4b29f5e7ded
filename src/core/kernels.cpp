#include "core/kernels.h"
#include "core/cpu_features.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <cstring>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "core/ggml_math.h"
#include "core/kernels_impl.h"
#include "core/weight_types.h"
#include "llmforge/error.h"
#include "llmforge/log.h"

namespace llmforge::kernels {


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
void axpy_f32_acc64_scalar(double* acc, float p, const float* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(p) * v[i];
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
template <class T, class XT, float (*Dot)(const T*, const XT*, int64_t)>
void rows_scalar(const T* W, const XT* x, float* y, int64_t K, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) y[r] = Dot(W + r * K, x, K);
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
        dot_f16_acc64_scalar, axpy_f16_acc64_scalar, axpy_f32_acc64_scalar,
        dot_scalar<float, at_f32>, dot_scalar<uint16_t, at_f16>, dot_scalar<uint16_t, at_bf16>, 1,
        gemm_scalar<float, at_f32>, gemm_scalar<uint16_t, at_f16>, gemm_scalar<uint16_t, at_bf16>,
        nullptr, nullptr,
        nullptr, nullptr, nullptr,
        ggml::rope_rows,
        tanh_scalar, exp_shift_sum_scalar,
        dot_f16_f16_scalar, to_f16_scalar,
        gemm_scalar<float, at_f32>, gemm_scalar<uint16_t, at_f16>, gemm_scalar<uint16_t, at_bf16>,
        nullptr, nullptr, nullptr, nullptr,
        rows_scalar<float, float, dot_scalar<float, at_f32>>, rows_scalar<uint16_t, uint16_t, dot_f16_f16_scalar>,
    };
    return &t;
}

namespace {
const KernelTable* detect() {
#if defined(LLMFORGE_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return table_avx512();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
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
            log_text(strprintf("llmforge: LLMFORGE_ISA=%s is not available on this CPU; using %s\n", want, g_active->name));
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
void axpy_f32_acc64(double* acc, float p, const float* v, int64_t n) { active().axpy_f32_acc64(acc, p, v, n); }

#if defined(__x86_64__) || defined(__i386__)
namespace {
bool is_intel() {
    __builtin_cpu_init();
    return __builtin_cpu_is("intel");
}
// The AMD CPU family (0x19 Zen 4, 0x1A Zen 5), or 0 on other vendors.
unsigned amd_family() {
    __builtin_cpu_init();
    if (!__builtin_cpu_is("amd")) return 0;
    unsigned a, b, cx, d;
    __cpuid(1, a, b, cx, d);
    return ((a >> 8) & 0xF) + ((a >> 8 & 0xF) == 0xF ? (a >> 20) & 0xFF : 0);
}
}  // namespace
#endif

int64_t stream_prefetch_bytes(size_t element_bytes) {
    struct Choice { int64_t wide, narrow; };  // 4-byte rows, 2-byte rows
    static const Choice c = [] {
        if (const char* v = std::getenv("LLMFORGE_PREFETCH"); v && *v) {
            const int64_t b = std::max<int64_t>(0, std::atoll(v));
            return Choice{b, b};
        }
#if defined(__x86_64__) || defined(__i386__)
        if (is_intel()) return Choice{2048, 2048};
        if (amd_family() >= 0x1A) return Choice{1024, 0};
#endif
        return Choice{0, 0};
    }();
    return element_bytes >= 4 ? c.wide : c.narrow;
}

bool quant_stream_prefetch() {
    static const bool on = [] {
        if (const char* v = std::getenv("LLMFORGE_QUANT_PREFETCH"); v && *v) return v[0] != '0';
#if defined(__x86_64__) || defined(__i386__)
        if (amd_family() >= 0x1A) return false;
#endif
        return true;
    }();
    return on;
}

int stream_rows(size_t element_bytes) {
    struct Choice { int wide, narrow; };  // 4-byte rows, 2-byte rows
    static const Choice c = [] {
        if (const char* v = std::getenv("LLMFORGE_STREAM_ROWS"); v && *v) {
            const int r = std::atoi(v);
            const int k = r >= 4 ? 4 : r >= 2 ? 2 : 1;
            return Choice{k, k};
        }
#if defined(__x86_64__) || defined(__i386__)
        if (amd_family() >= 0x1A) return Choice{4, 1};
#endif
        return Choice{1, 1};
    }();
    return element_bytes >= 4 ? c.wide : c.narrow;
}

void tanh(const float* x, float* y, int64_t n) { active().tanh(x, y, n); }
double exp_shift_sum(const float* x, float* y, int64_t n, float shift) { return active().exp_shift_sum(x, y, n, shift); }

// The weight-type entry points: each type's traits (core/weight_types.h) pick its kernels.
float dot(DType wt, const void* w, const float* x, int64_t n) { return weight_type(wt, "dot").dot(w, x, n); }

void matvec(DType wt, const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) {
    weight_type(wt, "matvec").matvec(W, x, y, rows, cols, pool);
}

void matmul_rowwise(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    weight_type(wt, "matmul").matmul_rowwise(W, X, Y, n, rows, cols, pool);
}

void matmul(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    weight_type(wt, "matmul").matmul(W, X, Y, n, rows, cols, pool);
}

void matmul_ggml(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    weight_type(wt, "matmul").matmul_ggml(W, X, Y, n, rows, cols, pool);
}

// ---------------------------------------------------------------- panel-layout weights
namespace {
// Panel p of W (rows 32p.. as 32 × cols) reordered k-major into the same place of Wp, or in place (W == Wp): blocks of
// B columns × B rows transposed in registers by block(src, ld, dst) (dst[c·32 + i] = src[i·ld + c]), the columns left
// over in scalar code.
template <class T, int B, class Block>
void pack_panels_by_blocks(const T* W, T* Wp, int64_t rows, int64_t cols, ThreadPool& pool, const char* what, Block block) {
    if (rows % kPanelRows != 0) throw_runtime("%s: %lld rows are not a multiple of %lld", what, (long long)rows, (long long)kPanelRows);
    pool.parallel_for(rows / kPanelRows, [&](int64_t p0, int64_t p1) {
        std::vector<T> tmp(W == Wp ? static_cast<size_t>(kPanelRows * cols) : 0);
        for (int64_t p = p0; p < p1; ++p) {
            const T* src = W + p * kPanelRows * cols;
            T* panel = Wp + p * kPanelRows * cols;
            if (W == Wp) src = static_cast<const T*>(std::memcpy(tmp.data(), src, tmp.size() * sizeof(T)));
            int64_t k0 = 0;
            if constexpr (B > 1)
                for (; k0 + B <= cols; k0 += B)
                    for (int64_t j0 = 0; j0 < kPanelRows; j0 += B) block(src + j0 * cols + k0, cols, panel + k0 * kPanelRows + j0);
            for (; k0 < cols; k0 += 64)  // in blocks of 64 columns, so the 32 source rows stay in cache
                for (int64_t j = 0; j < kPanelRows; ++j)
                    for (int64_t k = k0; k < std::min(cols, k0 + 64); ++k) panel[k * kPanelRows + j] = src[j * cols + k];
        }
    });
}
#if defined(__SSE2__)
constexpr int kBlock32 = 4, kBlock16 = 8;
#else
constexpr int kBlock32 = 1, kBlock16 = 1;
#endif
}  // namespace

void pack_panels(const float* W, float* Wp, int64_t rows, int64_t cols, ThreadPool& pool) {
    pack_panels_by_blocks<float, kBlock32>(W, Wp, rows, cols, pool, "pack_panels", [](const float* src, int64_t ld, float* dst) {
#if defined(__SSE2__)
        __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + ld), r2 = _mm_loadu_ps(src + 2 * ld), r3 = _mm_loadu_ps(src + 3 * ld);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst, r0);
        _mm_storeu_ps(dst + kPanelRows, r1);
        _mm_storeu_ps(dst + 2 * kPanelRows, r2);
        _mm_storeu_ps(dst + 3 * kPanelRows, r3);
#else
        (void)src, (void)ld, (void)dst;
#endif
    });
}

void pack_panels(float* W, int64_t rows, int64_t cols, ThreadPool& pool) { pack_panels(W, W, rows, cols, pool); }

// 8 × 8 blocks of 16-bit values transposed by 16-bit, then 32-bit, then 64-bit interleaves (loading TinyLlama f16
// had spent 0.55 s reordering in scalar code).
void pack_panels_f16(const uint16_t* W, uint16_t* Wp, int64_t rows, int64_t cols, ThreadPool& pool) {
    pack_panels_by_blocks<uint16_t, kBlock16>(W, Wp, rows, cols, pool, "pack_panels_f16", [](const uint16_t* src, int64_t ld, uint16_t* dst) {
#if defined(__SSE2__)
        __m128i a[8], t[8], u[8];
        for (int i = 0; i < 8; ++i) a[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * ld));
        for (int i = 0; i < 4; ++i) {
            t[2 * i] = _mm_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
            t[2 * i + 1] = _mm_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
        }
        for (int h = 0; h < 2; ++h)  // rows 0–3 (h = 0) and 4–7: columns 0–1, 2–3, 4–5, 6–7 of four rows
            for (int i = 0; i < 2; ++i) {
                u[4 * h + 2 * i] = _mm_unpacklo_epi32(t[4 * h + i], t[4 * h + 2 + i]);
                u[4 * h + 2 * i + 1] = _mm_unpackhi_epi32(t[4 * h + i], t[4 * h + 2 + i]);
            }
        for (int c = 0; c < 4; ++c) {  // columns 2c and 2c + 1 of all eight rows
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * c * kPanelRows), _mm_unpacklo_epi64(u[c], u[4 + c]));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (2 * c + 1) * kPanelRows), _mm_unpackhi_epi64(u[c], u[4 + c]));
        }
#else
        (void)src, (void)ld, (void)dst;
#endif
    });
}

bool has_panel_kernels() { return active().gemm_panels_f32 != nullptr && active().matvec_panels_f32 != nullptr; }
bool has_f16_panel_kernels() { return active().gemm_panels_f16 != nullptr && active().matvec_panels_f16 != nullptr; }

namespace {
// The panel products in portable code, in the order the SIMD kernels sum (see kernels.h): per chunk one fused
// multiply-add chain from zero, the chunks added in turn.
template <class T, float (*At)(const T*, int64_t)>
void panels_portable(const T* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    for (int64_t i = 0; i < n; ++i)
        for (int64_t r = r0; r < r1; ++r) {
            const T* w = Wp + (r / kPanelRows) * kPanelRows * K + r % kPanelRows;
            const float* x = X + i * K;
            float y = 0.0f;
            for (int64_t k0 = 0; k0 < K; k0 += kPanelK) {
                float s = 0.0f;
                for (int64_t k = k0; k < std::min(K, k0 + kPanelK); ++k) s = std::fma(x[k], At(w, k * kPanelRows), s);
                y = k0 == 0 ? s : y + s;
            }
            Y[i * rows + r] = y;
        }
}
float panel_at_f32(const float* p, int64_t i) { return p[i]; }
float panel_at_f16(const uint16_t* p, int64_t i) { return f16_to_f32(p[i]); }
}  // namespace

void matmul_panels(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (rows % kPanelRows != 0) throw_runtime("matmul_panels: %lld rows are not a multiple of %lld", (long long)rows, (long long)kPanelRows);
    if (n <= 0 || rows == 0) return;
    const KernelTable& k = active();
    // one contiguous range of panels per thread: each streams its part of the matrix once
    pool.parallel_for(rows / kPanelRows, [&](int64_t p0, int64_t p1) {
        const int64_t r0 = p0 * kPanelRows, r1 = p1 * kPanelRows;
        if (!k.gemm_panels_f32) panels_portable<float, panel_at_f32>(Wp, X, Y, n, rows, cols, r0, r1);
        else if (n <= 4) k.matvec_panels_f32(Wp, X, Y, n, rows, cols, r0, r1);
        else k.gemm_panels_f32(Wp, X, Y, n, rows, cols, r0, r1);
    });
}

void matmul_panels_f16(const uint16_t* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    if (rows % kPanelRows != 0) throw_runtime("matmul_panels_f16: %lld rows are not a multiple of %lld", (long long)rows, (long long)kPanelRows);
    if (n <= 0 || rows == 0) return;
    const KernelTable& k = active();
    // the activations rounded to f16 value by value (llama.cpp's vec_dot_type for f16; the same for every n)
    thread_local std::vector<float> xr;
    xr.assign(X, X + n * cols);
    if (k.round_f16) k.round_f16(xr.data(), n * cols);
    else
        for (float& v : xr) v = f16_to_f32(f32_to_f16(v));
    const float* Xr = xr.data();
    pool.parallel_for(rows / kPanelRows, [&](int64_t p0, int64_t p1) {
        const int64_t r0 = p0 * kPanelRows, r1 = p1 * kPanelRows;
        if (!k.gemm_panels_f16) panels_portable<uint16_t, panel_at_f16>(Wp, Xr, Y, n, rows, cols, r0, r1);
        else if (n <= 4) k.matvec_panels_f16(Wp, Xr, Y, n, rows, cols, r0, r1);
        else k.gemm_panels_f16(Wp, Xr, Y, n, rows, cols, r0, r1);
    });
}

}  // namespace llmforge::kernels

namespace llmforge {

void convert_f16_to_f32(const uint16_t* src, float* dst, size_t n) { kernels::active().cvt_f16(src, dst, static_cast<int64_t>(n)); }
void convert_bf16_to_f32(const uint16_t* src, float* dst, size_t n) { kernels::active().cvt_bf16(src, dst, static_cast<int64_t>(n)); }
void convert_f32_to_f16(const float* src, uint16_t* dst, size_t n) { for (size_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]); }
void convert_f32_to_bf16(const float* src, uint16_t* dst, size_t n) { for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]); }

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
    const WeightType* w = find_weight_type(t);
    if (!w) throw_runtime("cannot convert %s to f32: type not supported yet", dtype_name(t));
    w->to_f32(src, dst, static_cast<int64_t>(n));
}

void convert_from_f32(DType t, const float* src, void* dst, size_t n) {
    const WeightType* w = find_weight_type(t);
    if (!w) throw_runtime("cannot convert f32 to %s: type not supported yet", dtype_name(t));
    w->from_f32(src, dst, static_cast<int64_t>(n));
}

}  // namespace llmforge
