// Element-type conversions, checked against the CPU's own F16C instructions and exhaustive round trips.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/cpu_features.h"
#include "core/quants.h"
#include "core/weight_types.h"
#include "llmforge/dtype.h"
#include "llmforge/error.h"
#include "llmforge/tensor.h"

using namespace llmforge;

__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

TEST(DType, F16ToF32AllValuesMatchHardware) {
    if (!cpu_has_f16c()) GTEST_SKIP() << "no F16C on this CPU";
    for (uint32_t h = 0; h < 65536; ++h) {
        const float a = f16_to_f32(static_cast<uint16_t>(h)), b = hw_f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(b)) {
            EXPECT_TRUE(std::isnan(a)) << h;
        } else {
            EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << h;
        }
    }
}

TEST(DType, F32ToF16RoundsToNearestEvenLikeHardware) {
    if (!cpu_has_f16c()) GTEST_SKIP() << "no F16C on this CPU";
    std::mt19937 rng(1);
    for (int i = 0; i < 2000000; ++i) {
        uint32_t u = rng();
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isnan(f)) continue;
        ASSERT_EQ(f32_to_f16(f), hw_f32_to_f16(f)) << "bits " << std::hex << u;
    }
    // halfway cases and the subnormal range, exhaustively around every f16 value
    for (uint32_t h = 0; h < 0x7c00; ++h) {
        const float lo = f16_to_f32(static_cast<uint16_t>(h)), hi = f16_to_f32(static_cast<uint16_t>(h + 1));
        const float mid = (lo + hi) / 2;
        EXPECT_EQ(f32_to_f16(mid), hw_f32_to_f16(mid)) << h;
        EXPECT_EQ(f32_to_f16(-mid), hw_f32_to_f16(-mid)) << h;
    }
}

TEST(DType, BF16RoundTrip) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
    // round to nearest even: 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125 → 1.0 (even)
    EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = bf16_to_f32(static_cast<uint16_t>(h));
        if (!std::isnan(f)) {
            EXPECT_EQ(f32_to_bf16(f), h);
        }
    }
}

TEST(DType, Names) {
    EXPECT_STREQ(dtype_name(DType::Q4_K), "q4_k");
    EXPECT_EQ(dtype_from_name("bf16"), DType::BF16);
    EXPECT_TRUE(dtype_supported(DType::Q8_0));
    EXPECT_FALSE(dtype_supported(DType::IQ2_XXS));
}

// The weight-type traits (core/weight_types.h) for every type the kernels compute with: the row layout agrees with
// GGUF's table of every ggml type, rows convert to f32 and back, and each product entry point — one row, a matrix
// with a vector, the batch-invariant tiles, the fastest form for several sizes, llama.cpp's order — agrees with a
// double-precision product of the same (rounded) weights and activations as the type rounds them.
TEST(WeightTypes, TraitsDescribeEveryComputableTypeAndItsProducts) {
    using namespace llmforge;
    ThreadPool pool(2);
    int computable = 0;
    for (uint32_t id = 0; id <= 40; ++id) {
        const DType t = static_cast<DType>(id);
        const WeightType* wt = find_weight_type(t);
        EXPECT_EQ(wt != nullptr, dtype_supported(t)) << dtype_name(t);
        if (!wt) {
            EXPECT_THROW(weight_type(t, "test"), Error);
            continue;
        }
        ++computable;
        EXPECT_EQ(wt->type(), t);
        const bool blocks = quant::is_quantized(t);
        const int64_t rows = 37, cols = 512;  // whole blocks of every type
        EXPECT_EQ(wt->row_bytes(cols), dtype_row_bytes(t, cols)) << dtype_name(t);
        std::mt19937 rng(id);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> w(static_cast<size_t>(rows * cols));
        for (float& v : w) v = nd(rng);
        std::vector<uint8_t> stored(wt->row_bytes(cols) * rows);
        wt->from_f32(w.data(), stored.data(), rows * cols);
        std::vector<float> back(w.size());
        wt->to_f32(stored.data(), back.data(), rows * cols);
        if (blocks) {  // the quantisation error is the type's: a bound loose enough for Q2_K (tested exactly against ggml elsewhere)
            double e = 0, ref = 0;
            for (size_t i = 0; i < w.size(); ++i) e += (back[i] - w[i]) * (back[i] - w[i]), ref += w[i] * w[i];
            EXPECT_LT(e / ref, 0.2) << dtype_name(t);
        } else {
            for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(back[i], w[i], std::abs(w[i]) * 1e-2f) << dtype_name(t);
        }
        // row r as the traits find it is the r-th row of the stored bytes
        std::vector<float> r5(static_cast<size_t>(cols));
        wt->to_f32(wt->row(stored.data(), 5, cols), r5.data(), cols);
        EXPECT_TRUE(std::equal(r5.begin(), r5.end(), back.begin() + 5 * cols));
        // products against double precision on the stored weights, activations rounded as the type rounds them
        for (int64_t n : {1, 3, 40, 200}) {
            std::vector<float> X(static_cast<size_t>(n * cols)), Y(static_cast<size_t>(n * rows));
            for (float& v : X) v = nd(rng);
            auto act = [&](float v) { return t == DType::F16 ? f16_to_f32(f32_to_f16(v)) : t == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v; };
            // block types: the activations quantised per block to the type's partner (Q8_0, Q8_1, Q8_K), as the products take them
            std::vector<float> Xq(X.size());
            if (blocks) {
                const DType a = quant::activation_type(t);
                std::vector<uint8_t> qb(quant::row_bytes(a, cols));
                for (int64_t i = 0; i < n; ++i) {
                    quant::quantize_activations(a, X.data() + i * cols, qb.data(), cols);
                    quant::dequantize(a, qb.data(), Xq.data() + i * cols, cols);
                }
            }
            auto check = [&](const char* which) {
                for (int64_t i = 0; i < n; ++i)
                    for (int64_t r = 0; r < rows; ++r) {
                        double ref = 0, mag = 0;
                        for (int64_t c = 0; c < cols; ++c) {
                            ref += static_cast<double>(back[r * cols + c]) * (blocks ? Xq[i * cols + c] : act(X[i * cols + c]));
                            mag += std::abs(static_cast<double>(back[r * cols + c]) * X[i * cols + c]);
                        }
                        // f16/bf16 activations: the fast paths may round them or not (the reference rounds): a few units of their precision
                        // Q4_1/Q5_1: their offsets meet each activation block's sum d·Σq, which Q8_1 stores in f16 (as ggml)
                        const bool q8_1 = blocks && quant::activation_type(t) == DType::Q8_1;
                        const double tol = (t == DType::F32 || (blocks && !q8_1) ? 1e-5 : t == DType::F16 || q8_1 ? 2e-3 : 1e-2) * mag + 1e-6;
                        ASSERT_NEAR(Y[i * rows + r], ref, tol) << dtype_name(t) << " " << which << " n=" << n;
                    }
            };
            wt->matmul(stored.data(), X.data(), Y.data(), n, rows, cols, pool);
            check("matmul");
            wt->matmul_rowwise(stored.data(), X.data(), Y.data(), n, rows, cols, pool);
            check("matmul_rowwise");
            wt->matmul_ggml(stored.data(), X.data(), Y.data(), n, rows, cols, pool);
            check("matmul_ggml");
            if (n == 1) {
                wt->matvec(stored.data(), X.data(), Y.data(), rows, cols, pool);
                check("matvec");
                for (int64_t r = 0; r < rows; ++r) Y[r] = wt->dot(wt->row(stored.data(), r, cols), X.data(), cols);
                check("dot");
            }
        }
    }
    EXPECT_EQ(computable, 15);  // f32, f16, bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS
}
