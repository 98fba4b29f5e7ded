// The weight types the CPU kernels compute with (see weight_types.h): f32, f16 and bf16, one class each, and ggml's
// quantised block types, one class for all (their kernels in core/quants.cpp).
#include "core/weight_types.h"
#include "core/cpu_features.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/ggml_math.h"
#include "core/kernels.h"
#include "core/kernels_impl.h"
#include "core/quants.h"
#include "llmforge/error.h"

namespace llmforge {

#if defined(LLMFORGE_X86)
namespace quant::x86 {  // quant_kernels_x86.cpp, built for AVX2 and for AVX512-VNNI
bool has_rows_avx2(DType t);
bool has_rows_vnni(DType t);
void rows_avx2(DType t, const uint8_t* W, size_t wrb, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n, int64_t r0, int64_t r1, int64_t cols);
void rows_vnni(DType t, const uint8_t* W, size_t wrb, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n, int64_t r0, int64_t r1, int64_t cols);
void rows8_q4_0_avx2(const uint8_t* W, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n, int64_t r0, int64_t r1, int64_t cols);
void rows8_q4_0_vnni(const uint8_t* W, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n, int64_t r0, int64_t r1, int64_t cols);
bool widen_avx2(DType t, const void* src, float* dst, int64_t n);
}  // namespace quant::x86
namespace kernels::detail {  // gemm_avx512.cpp (AVX512-BF16)
void round_to_bf16_avx512(const float* x, uint16_t* y, int64_t n);
void rowwise_bf16_dp(const uint16_t* W, const uint16_t* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
}  // namespace kernels::detail
#endif

using kernels::KernelTable;
using kernels::active;

// One contiguous range of rows per thread: a single sequential stream each is what the hardware prefetchers follow
// best (measured: 48 GB/s against 34 GB/s when four rows are interleaved; handing out 64 KiB pieces dynamically cut f16
// decoding from 18 to 13 tokens/s, as every piece restarts the prefetchers).
void WeightType::matvec_by_rows(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const {
    const size_t rb = row_bytes(cols);
    const uint8_t* w = static_cast<const uint8_t*>(W);
    pool.parallel_for(rows, [this, rb, w, x, y, cols](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) y[r] = dot(w + static_cast<size_t>(r) * rb, x, cols);
    });
}

void WeightType::matvec(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const {
    matvec_by_rows(W, x, y, rows, cols, pool);
}

void WeightType::matmul(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const {
    if (n == 1) return matvec(W, X, Y, rows, cols, pool);
    // Up to a few dozen rows the register-tiled dot products (dot_seq's order: one accumulator per product, as llama.cpp's
    // prompt pass sums a length that is a multiple of the vector width) beat packing: measured on a 5632 × 2048 matrix,
    // 2 threads, f16 185 GFLOP/s against the GEMM's 110 at n = 16 and still ahead at 128; f32 ahead up to n = 32.
    if (n <= seq_max_rows()) return matmul_rowwise(W, X, Y, n, rows, cols, pool);
    const GemmFn g = gemm();
    // Each thread takes a contiguous range of weight rows (in panels of 32) for all n activation rows.
    const int64_t groups = (rows + 31) / 32;
    pool.parallel_for(groups, [&](int64_t g0, int64_t g1) { g(W, X, Y, n, rows, cols, g0 * 32, std::min(rows, g1 * 32)); });
}

void WeightType::interleave(const void*, void*, int64_t, int64_t) const {
    throw_runtime("%s weights have no interleaved form", dtype_name(type()));
}

void WeightType::matmul_interleaved(const void*, const float*, float*, int64_t, int64_t, int64_t, ThreadPool&) const {
    throw_runtime("%s weights have no interleaved form", dtype_name(type()));
}

void WeightType::dot_quantized_rows(const void*, size_t, const void*, float*, int64_t, int64_t) const {
    throw_runtime("%s is not a quantised block type", dtype_name(type()));
}

namespace {

using Gemm = void (*)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);

// LLMFORGE_SEQ_MAX_ROWS overrides the f16/bf16 threshold (for measuring the two paths side by side).
int64_t seq_max_rows_env() {
    const char* v = std::getenv("LLMFORGE_SEQ_MAX_ROWS");
    return v && *v ? std::max<int64_t>(1, std::atoll(v)) : 0;
}
const int64_t kSeqMaxRows16 = [] {
    const int64_t e = seq_max_rows_env();
    return e ? e : int64_t{128};
}();

// Up to how many activation rows f16 weights take the row-wise tiles rather than the packed GEMM, by measurement on
// this CPU, once per process: the crossing differs by microarchitecture. On AMD Zen 4 the tiles still led at 128 rows;
// on Zen 5, whose FMA units are a full 512 bits wide, the GEMM leads from 64 (TinyLlama-1.1B f16, 2 threads: 16 rows
// 127 t/s tiles / 82 GEMM, 32 rows 121 / 113, 64 rows 115 / 131, 128 rows 115 / 148). Measured: a 256 × 2048 f16
// matrix times 128 rows, both kernels, one thread, in turn three times each, the best of each (about 6 ms): the GEMM
// faster gives 32, else 128. (Times 64 rows, each kernel's three runs together, the probe read the two as equal on
// Zen 5 and chose the tiles in 8 of 12 processes — pp128 with the tiles 77–98 t/s, with the GEMM 116–141, forced by
// LLMFORGE_SEQ_MAX_ROWS, alternating; in turn at 128 rows the GEMM measured 0.64–0.80 of the tiles' time in 8 of 8.)
int64_t f16_seq_max_rows() {
    static const int64_t v = [] {
        if (const int64_t e = seq_max_rows_env()) return e;
        const KernelTable& k = active();
        if (!k.gemm_f16 || !k.gemm_seq_f16) return int64_t{128};
        constexpr int64_t rows = 256, K = 2048, n = 128;
        std::vector<uint16_t> W(static_cast<size_t>(rows * K));
        std::vector<float> X(static_cast<size_t>(n * K)), Y(static_cast<size_t>(n * rows));
        uint32_t state = 12345;
        auto next = [&] { state = state * 1664525u + 1013904223u; return static_cast<float>(state >> 8) / 16777216.0f - 0.5f; };
        for (auto& w : W) w = f32_to_f16(next() * 0.1f);
        for (auto& x : X) x = f16_to_f32(f32_to_f16(next()));
        auto time = [&](Gemm f) {
            const auto t0 = std::chrono::steady_clock::now();
            f(W.data(), X.data(), Y.data(), n, rows, K, 0, rows);
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        };
        double tiles = 1e30, gemm = 1e30;
        for (int rep = 0; rep < 3; ++rep) {  // in turn, so that a slow moment of the machine hits both
            tiles = std::min(tiles, time(k.gemm_seq_f16));
            gemm = std::min(gemm, time(k.gemm_f16));
        }
        return gemm < tiles ? int64_t{32} : int64_t{128};
    }();
    return v;
}

// The calling thread's copy of X with each value rounded to f16 (the workers read it).
const float* rounded_f16(const float* X, int64_t count) {
    thread_local std::vector<float> xr;
    xr.assign(X, X + count);
    const KernelTable& k = active();
    if (k.round_f16) k.round_f16(xr.data(), count);
    else
        for (float& v : xr) v = f16_to_f32(f32_to_f16(v));
    return xr.data();
}

// contiguous ranges of rows, in groups of 4 (the tile height), one range per thread
void rowwise_tiles(Gemm f, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    const int64_t groups = (rows + 3) / 4;
    pool.parallel_for(groups, [&](int64_t g0, int64_t g1) { f(W, X, Y, n, rows, cols, g0 * 4, std::min(rows, g1 * 4)); });
}

// Reads f16 weights as floats for ggml_math.h's scalar forms.
struct F16Reader {
    const uint16_t* p;
    float operator[](int64_t i) const { return f16_to_f32(p[i]); }
};

// llama.cpp's order for f32 and f16 weights (ggml's CPU backend, AVX-512): llamafile's tinyBLAS for several rows when
// cols % 16 == 0 and rows % 4 == 0, ggml_vec_dot otherwise. X is already rounded as ggml rounds it (f16: its vec_dot_type).
template <bool F16>
void matmul_ggml_order(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) {
    const KernelTable& k = active();
    if (cols % ggml::kLanes == 0 && rows % 4 == 0) {  // llamafile's tinyBLAS takes it
        auto* tb = F16 ? k.gemm_tinyblas_f16 : k.gemm_tinyblas_f32;
        const int64_t groups = rows / 4;
        pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
            if (tb) {
                tb(W, X, Y, n, rows, cols, g0 * 4, g1 * 4);
            } else {
                for (int64_t r = g0 * 4; r < g1 * 4; ++r)
                    for (int64_t i = 0; i < n; ++i) {
                        if constexpr (F16) Y[i * rows + r] = ggml::dot_tinyblas(F16Reader{static_cast<const uint16_t*>(W) + r * cols}, X + i * cols, cols);
                        else Y[i * rows + r] = ggml::dot_tinyblas(static_cast<const float*>(W) + r * cols, X + i * cols, cols);
                    }
            }
        });
        return;
    }
    // ggml's own matrix product: ggml_vec_dot_f32 / _f16 per output (dot_f32 / dot_f16 where vectors have 16 lanes)
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t i = 0; i < n; ++i) {
                float& y = Y[i * rows + r];
                if constexpr (F16) {
                    const uint16_t* w = static_cast<const uint16_t*>(W) + r * cols;
                    y = k.vec_width == ggml::kLanes ? k.dot_f16(w, X + i * cols, cols) : ggml::dot_vec<true>(F16Reader{w}, X + i * cols, cols);
                } else {
                    const float* w = static_cast<const float*>(W) + r * cols;
                    y = k.vec_width == ggml::kLanes ? k.dot_f32(w, X + i * cols, cols) : ggml::dot_vec<false>(w, X + i * cols, cols);
                }
            }
    });
}

// ---- f32
class F32 final : public WeightType {
public:
    DType type() const override { return DType::F32; }
    size_t block_bytes() const override { return 4; }
    void to_f32(const void* src, float* dst, int64_t n) const override { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }
    void from_f32(const float* src, void* dst, int64_t n) const override { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }
    float dot(const void* w, const float* x, int64_t n) const override { return active().dot_f32(static_cast<const float*>(w), x, n); }
    // the rows' dot products straight from the kernel table (decoding is a loop of them: nothing else per row)
    void matvec(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        const float* w = static_cast<const float*>(W);
        const auto rows_f32 = active().rows_f32;
        pool.parallel_for(rows, [=](int64_t r0, int64_t r1) { rows_f32(w, x, y, cols, r0, r1); });
    }
    void matmul_rowwise(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        rowwise_tiles(active().gemm_seq_f32, W, X, Y, n, rows, cols, pool);
    }
    void matmul_ggml(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        if (n == 1) return matvec(W, X, Y, rows, cols, pool);  // decoding: ggml_vec_dot order
        matmul_ggml_order<false>(W, X, Y, n, rows, cols, pool);
    }

protected:
    GemmFn gemm() const override { return active().gemm_f32; }
    int64_t seq_max_rows() const override { return 32; }
};

// ---- f16: the activations rounded to f16 first, as llama.cpp does (its vec_dot_type for f16)
class F16 final : public WeightType {
public:
    DType type() const override { return DType::F16; }
    size_t block_bytes() const override { return 2; }
    void to_f32(const void* src, float* dst, int64_t n) const override { active().cvt_f16(static_cast<const uint16_t*>(src), dst, n); }
    void from_f32(const float* src, void* dst, int64_t n) const override {
        uint16_t* d = static_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
    }
    float dot(const void* w, const float* x, int64_t n) const override { return active().dot_f16(static_cast<const uint16_t*>(w), x, n); }
    // x rounded to f16 once, then f16 · f16 products: half the activation bytes per product make the memory-bound loop
    // faster (TinyLlama-1.1B f16 decoding 13.5 -> 17.5 tokens/s)
    void matvec(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        const KernelTable& k = active();
        thread_local std::vector<uint16_t> xh_buf;
        if (static_cast<int64_t>(xh_buf.size()) < cols) xh_buf.resize(static_cast<size_t>(cols));
        uint16_t* xh = xh_buf.data();  // the calling thread's buffer (a thread_local named in the lambda would be each worker's)
        k.to_f16(x, xh, cols);
        const uint16_t* w = static_cast<const uint16_t*>(W);
        const auto rows_f16 = k.rows_f16_f16;
        pool.parallel_for(rows, [=](int64_t r0, int64_t r1) { rows_f16(w, xh, y, cols, r0, r1); });
    }
    // each value rounded on its own, so the rounding never depends on n (still batch-invariant)
    void matmul_rowwise(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        rowwise_tiles(active().gemm_seq_f16, W, rounded_f16(X, n * cols), Y, n, rows, cols, pool);
    }
    void matmul_ggml(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        if (n == 1) return matvec(W, X, Y, rows, cols, pool);  // decoding: ggml_vec_dot order, x rounded to f16
        matmul_ggml_order<true>(W, rounded_f16(X, n * cols), Y, n, rows, cols, pool);
    }

protected:
    GemmFn gemm() const override { return active().gemm_f16; }
    int64_t seq_max_rows() const override { return f16_seq_max_rows(); }
};

// ---- bf16: the activations rounded to bf16 first (llama.cpp's vec_dot_type for bf16)
class BF16 final : public WeightType {
public:
    DType type() const override { return DType::BF16; }
    size_t block_bytes() const override { return 2; }
    void to_f32(const void* src, float* dst, int64_t n) const override { active().cvt_bf16(static_cast<const uint16_t*>(src), dst, n); }
    void from_f32(const float* src, void* dst, int64_t n) const override {
        uint16_t* d = static_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
    }
    float dot(const void* w, const float* x, int64_t n) const override { return active().dot_bf16(static_cast<const uint16_t*>(w), x, n); }
    // the lone-row form of the row-wise product (x rounded to bf16)
    void matvec(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        matmul_rowwise(W, x, y, 1, rows, cols, pool);
    }
    // With AVX512-BF16: vdpbf16ps on the bf16 activations (twice the f32 FMA rate: the batched decoding steps of a
    // server are compute-bound). Otherwise the rounded activations through the f32-accumulating kernel.
    void matmul_rowwise(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
#if defined(LLMFORGE_X86)
        if (kernels::has_native_bf16()) {
            thread_local std::vector<uint16_t> xb;
            xb.resize(static_cast<size_t>(n * cols));
            for (int64_t i = 0; i < n; ++i) kernels::detail::round_to_bf16_avx512(X + i * cols, xb.data() + i * cols, cols);
            const uint16_t* xp = xb.data();
            const int64_t groups = (rows + 3) / 4;
            pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
                kernels::detail::rowwise_bf16_dp(static_cast<const uint16_t*>(W), xp, Y, n, rows, cols, g0 * 4, std::min(rows, g1 * 4));
            });
            return;
        }
#endif
        thread_local std::vector<float> xr;
        xr.assign(X, X + n * cols);
        for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
        rowwise_tiles(active().gemm_seq_bf16, W, xr.data(), Y, n, rows, cols, pool);
    }

protected:
    GemmFn gemm() const override { return active().gemm_bf16; }
    int64_t seq_max_rows() const override { return kSeqMaxRows16; }
};

// ---- ggml's quantised block types (core/quants.h): the activations are quantised per block to the type's partner
// (Q8_0, Q8_1 or Q8_K) once per product, then every weight row's integer dot products are taken with them.
class Quantized final : public WeightType {
public:
    explicit Quantized(DType t) : t_(t), act_(quant::activation_type(t)) {
#if defined(LLMFORGE_X86)
        __builtin_cpu_init();
        simd_widen_ = (t == DType::Q8_0 || t == DType::Q4_0) && __builtin_cpu_supports("avx2") && cpu_has_f16c();
#endif
    }
    DType type() const override { return t_; }
    int64_t block_elems() const override { return quant::block_elems(t_); }
    size_t block_bytes() const override { return quant::block_bytes(t_); }
    size_t alignment() const override { return 1; }  // blocks are read byte-wise (their f16 fields unaligned)
    // Q8_0 and Q4_0 rows widened with AVX2 where the CPU has it (the same values; a quantised KV cache's value rows and
    // QLoRA's tiles), the others by dequantize()
    void to_f32(const void* src, float* dst, int64_t n) const override {
#if defined(LLMFORGE_X86)
        if (simd_widen_ && quant::x86::widen_avx2(t_, src, dst, n)) return;
#endif
        quant::dequantize(t_, src, dst, n);
    }
    void from_f32(const float* src, void* dst, int64_t n) const override { quant::quantize(t_, src, dst, 1, n); }
    float dot(const void* w, const float* x, int64_t n) const override {
        const std::vector<uint8_t>& xq = activations(x, 1, n);
        return quant::vec_dot(t_, w, xq.data(), n);
    }
    void matvec(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        matmul_rowwise(W, x, y, 1, rows, cols, pool);
    }
    // Each thread takes a contiguous range of weight rows; each row meets every activation row while it is in cache.
    void matmul_rowwise(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        const std::vector<uint8_t>& xq = activations(X, n, cols);
        const size_t xrb = quant::row_bytes(act_, cols), wrb = row_bytes(cols);
        const uint8_t* w = static_cast<const uint8_t*>(W);
        const uint8_t* xp = xq.data();
        const DType t = t_;
        if (const RowsFn f = simd_rows()) {
            pool.parallel_for(rows, [=](int64_t r0, int64_t r1) { f(t, w, wrb, xp, xrb, Y, rows, n, r0, r1, cols); });
            return;
        }
        using DotFn = float (*)(DType, const void*, const void*, int64_t);
        const DotFn dot = quant::q4_0_chain_order(t, rows) ? DotFn{[](DType, const void* a, const void* b, int64_t k) { return quant::vec_dot_q4_0_chain(a, b, k); }}
                                                           : DotFn{[](DType d, const void* a, const void* b, int64_t k) { return quant::vec_dot(d, a, b, k); }};
        pool.parallel_for(rows, [=](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t i = 0; i < n; ++i) Y[i * rows + r] = dot(t, w + static_cast<size_t>(r) * wrb, xp + static_cast<size_t>(i) * xrb, cols);
        });
    }

    void dot_quantized_rows(const void* W, size_t stride, const void* xq, float* y, int64_t rows, int64_t cols) const override {
        const uint8_t* w = static_cast<const uint8_t*>(W);
        if (const RowsFn f = simd_rows()) {
            // one activation row: ldy 1 (the outputs side by side; never Q4_0's chain order, which needs ldy % 8 == 0)
            f(t_, w, stride, static_cast<const uint8_t*>(xq), quant::row_bytes(act_, cols), y, 1, 1, 0, rows, cols);
            return;
        }
        for (int64_t r = 0; r < rows; ++r) y[r] = quant::vec_dot(t_, w + static_cast<size_t>(r) * stride, xq, cols);
    }

    // Q4_0 interleaved by eight rows (quants.h), where this CPU has the kernel
    bool interleavable(int64_t rows, int64_t cols) const override {
        return t_ == DType::Q4_0 && rows % 8 == 0 && cols % 32 == 0 && rows8_fn() != nullptr;
    }
    void interleave(const void* src, void* dst, int64_t rows, int64_t cols) const override {
        if (!interleavable(rows, cols)) WeightType::interleave(src, dst, rows, cols);
        quant::interleave_q4_0(src, dst, rows, cols);
    }
    // each thread a contiguous range of the groups of eight rows
    void matmul_interleaved(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const override {
        const Rows8Fn f = rows8_fn();
        if (!f || rows % 8 != 0) return WeightType::matmul_interleaved(W, X, Y, n, rows, cols, pool);
        const std::vector<uint8_t>& xq = activations(X, n, cols);
        const size_t xrb = quant::row_bytes(act_, cols);
        const uint8_t* w = static_cast<const uint8_t*>(W);
        const uint8_t* xp = xq.data();
        pool.parallel_for(rows / 8, [=](int64_t g0, int64_t g1) { f(w, xp, xrb, Y, rows, n, g0 * 8, g1 * 8, cols); });
    }

protected:
    GemmFn gemm() const override { return nullptr; }  // never asked: the row-wise form serves every n
    int64_t seq_max_rows() const override { return INT64_MAX; }

private:
    using RowsFn = void (*)(DType, const uint8_t*, size_t, const uint8_t*, size_t, float*, int64_t, int64_t, int64_t, int64_t, int64_t);
    // The SIMD block products of the active instruction set for this type (AVX2, or AVX512 with VNNI), or null.
    RowsFn simd_rows() const {
#if defined(LLMFORGE_X86)
        const std::string isa = kernels::active().name;
        if (isa == "avx512" && kernels::has_vnni() && quant::x86::has_rows_vnni(t_)) return quant::x86::rows_vnni;
        if ((isa == "avx512" || isa == "avx2") && quant::x86::has_rows_avx2(t_)) return quant::x86::rows_avx2;
#endif
        return nullptr;
    }
    using Rows8Fn = void (*)(const uint8_t*, const uint8_t*, size_t, float*, int64_t, int64_t, int64_t, int64_t, int64_t);
    Rows8Fn rows8_fn() const {
#if defined(LLMFORGE_X86)
        if (t_ != DType::Q4_0) return nullptr;
        const std::string isa = kernels::active().name;
        if (isa == "avx512" && kernels::has_vnni()) return quant::x86::rows8_q4_0_vnni;
        if (isa == "avx512" || isa == "avx2") return quant::x86::rows8_q4_0_avx2;
#endif
        return nullptr;
    }
    // The calling thread's buffer of the n rows of X quantised to the activation type.
    const std::vector<uint8_t>& activations(const float* X, int64_t n, int64_t cols) const {
        if (cols % quant::block_elems(act_) != 0)
            throw_runtime("%s weights: rows of %lld values do not split into %s blocks", dtype_name(t_), static_cast<long long>(cols), dtype_name(act_));
        thread_local std::vector<uint8_t> buf;
        const size_t rb = quant::row_bytes(act_, cols);
        buf.resize(rb * static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) quant::quantize_activations(act_, X + i * cols, buf.data() + static_cast<size_t>(i) * rb, cols);
        return buf;
    }
    DType t_, act_;
    bool simd_widen_ = false;  // to_f32 through quant::x86::widen_avx2
};

}  // namespace

const WeightType* find_weight_type(DType t) {
    static const F32 f32;
    static const F16 f16;
    static const BF16 bf16;
    switch (t) {
        case DType::F32: return &f32;
        case DType::F16: return &f16;
        case DType::BF16: return &bf16;
        default: break;
    }
    // ggml's block types: one Quantized each (not the activations' Q8_1 and Q8_K)
    static const std::vector<Quantized> blocks = [] {
        std::vector<Quantized> v;
        for (DType b : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                        DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS})
            v.emplace_back(b);
        return v;
    }();
    for (const Quantized& q : blocks)
        if (q.type() == t) return &q;
    return nullptr;
}

const WeightType& weight_type(DType t, const char* what) {
    if (const WeightType* w = find_weight_type(t)) return *w;
    throw_runtime("%s: weight type %s is not supported by the CPU kernels", what, dtype_name(t));
}

}  // namespace llmforge
