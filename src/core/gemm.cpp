// kernels::gemm — the training GEMM with transposed operands, f32 or bf16 (see kernels.h). AVX-512 CPUs run
// gemm_avx512.cpp; elsewhere the operands are brought to the layout kernels::matmul takes (and rounded to bf16 when asked),
// which gives the same results through the inference GEMM.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/kernels.h"
#include "core/kernels_impl.h"
#include "llmforge/error.h"

namespace llmforge::kernels {

#if defined(LLMFORGE_X86)
namespace detail {
void gemm_avx512_f32(const float* a, int64_t lda, bool a_t, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n,
                     int64_t rows, int64_t K, bool accumulate, ThreadPool& pool);
void gemm_avx512_bf16(const float* a, int64_t lda, bool a_t, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n,
                      int64_t rows, int64_t K, bool accumulate, ThreadPool& pool);
}  // namespace detail
#endif

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "f32"; }

namespace {
bool avx512_active() { return std::strcmp(active().name, "avx512") == 0; }

// dst[r_out, c_out] row-major from src (element (r, c) at src[r·ld + c], or src[c·ld + r] when transposed), rounded
// to bf16 if asked.
void to_row_major(const float* src, int64_t ld, bool transposed, int64_t r_out, int64_t c_out, bool round, std::vector<float>& dst,
                  ThreadPool& pool) {
    dst.resize(static_cast<size_t>(r_out * c_out));
    pool.parallel_for(r_out, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t c = 0; c < c_out; ++c) {
                float v = transposed ? src[c * ld + r] : src[r * ld + c];
                if (round) v = bf16_to_f32(f32_to_bf16(v));
                dst[static_cast<size_t>(r * c_out + c)] = v;
            }
    });
}
}  // namespace

bool has_vnni() {
#if defined(LLMFORGE_X86)
    static const bool cpu = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vnni") != 0 && __builtin_cpu_supports("avx512vl") != 0;
    }();
    return cpu && avx512_active();
#else
    return false;
#endif
}

bool has_native_bf16() {
#if defined(LLMFORGE_X86)
    static const bool cpu = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512bf16") != 0;
    }();
    return cpu && avx512_active();
#else
    return false;
#endif
}

void gemm(const float* a, bool a_t, const float* b, bool b_t, float* c, int64_t n, int64_t rows, int64_t K, bool accumulate,
          Precision prec, ThreadPool& pool) {
    gemm(a, a_t ? n : K, a_t, b, b_t ? rows : K, b_t, c, rows, n, rows, K, accumulate, prec, pool);
}

void gemm(const float* a, int64_t lda, bool a_t, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n, int64_t rows,
          int64_t K, bool accumulate, Precision prec, ThreadPool& pool) {
    if (n < 0 || rows < 0 || K < 0) throw_runtime("gemm: negative size (%lld, %lld, %lld)", (long long)n, (long long)rows, (long long)K);
    if (n == 0 || rows == 0) return;
    if (K == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < n; ++i) std::fill(c + i * ldc, c + i * ldc + rows, 0.0f);
        return;
    }
#if defined(LLMFORGE_X86)
    if (avx512_active()) {
        if (prec == Precision::F32) return detail::gemm_avx512_f32(a, lda, a_t, b, ldb, b_t, c, ldc, n, rows, K, accumulate, pool);
        if (has_native_bf16()) return detail::gemm_avx512_bf16(a, lda, a_t, b, ldb, b_t, c, ldc, n, rows, K, accumulate, pool);
    }
#endif
    // Portable path: compact row-major (and rounded) copies, then the inference GEMM Y = X · Wᵀ.
    const bool round = prec == Precision::BF16;
    std::vector<float> A, B, tmp;
    const float* pa = a;
    const float* pb = b;
    if (a_t || round || lda != K) {
        to_row_major(a, lda, a_t, n, K, round, A, pool);
        pa = A.data();
    }
    if (b_t || round || ldb != K) {
        to_row_major(b, ldb, b_t, rows, K, round, B, pool);
        pb = B.data();
    }
    if (!accumulate && ldc == rows) return matmul(DType::F32, pb, pa, c, n, rows, K, pool);
    tmp.resize(static_cast<size_t>(n * rows));
    matmul(DType::F32, pb, pa, tmp.data(), n, rows, K, pool);
    pool.parallel_for(n, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t r = 0; r < rows; ++r) {
                const float v = tmp[static_cast<size_t>(i * rows + r)];
                c[i * ldc + r] = accumulate ? c[i * ldc + r] + v : v;
            }
    });
}

}  // namespace llmforge::kernels
