// The quantised block formats against ggml itself: for every type, llmforge's quantiser writes the bytes ggml's
// ggml_quantize_chunk writes (without and with an importance matrix), and its dequantisation gives ggml's
// dequantize_row_* floats bit for bit.
//
// ggml is loaded at run time from LLMFORGE_GGML_LIB: by default the libggml-base.so that the npm package
// @node-llama-cpp/linux-x64 ships in tests/npm (a prebuilt llama.cpp; scripts/setup.sh installs it); the anchor build of
// ggerganov/llama.cpp c392e50 (outside the project) is checked the same way by pointing LLMFORGE_GGML_LIB at its
// build/bin/libggml-base.so. Nothing of ggml is compiled into llmforge or this test.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/kernels.h"
#include "core/quants.h"
#include "core/threadpool.h"
#include "core/weight_types.h"

using namespace llmforge;

namespace {

using QuantizeChunk = size_t (*)(int type, const float* src, void* dst, int64_t start, int64_t nrows, int64_t n_per_row, const float* imatrix);
using DequantizeRow = void (*)(const void* x, float* y, int64_t k);
using QuantizeRowRef = void (*)(const float* x, void* y, int64_t k);

struct Ggml {
    void* handle = nullptr;
    QuantizeChunk quantize_chunk = nullptr;
    std::string path, error;
    Ggml() {
        const char* p = std::getenv("LLMFORGE_GGML_LIB");
        path = p && *p ? p : LLMFORGE_SOURCE_DIR "/tests/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
        handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            error = dlerror();
            return;
        }
        quantize_chunk = reinterpret_cast<QuantizeChunk>(dlsym(handle, "ggml_quantize_chunk"));
        // ggml_init fills ggml's f16 → f32 table, which some builds' dequantisers read
        struct InitParams {
            size_t mem_size;
            void* mem_buffer;
            bool no_alloc;
        };
        using Init = void* (*)(InitParams);
        using Free = void (*)(void*);
        if (auto init = sym<Init>("ggml_init"))
            if (void* ctx = init(InitParams{1024, nullptr, true}))
                if (auto done = sym<Free>("ggml_free")) done(ctx);
    }
    template <class F>
    F sym(const std::string& name) const { return reinterpret_cast<F>(dlsym(handle, name.c_str())); }
};

const Ggml& ggml() {
    static const Ggml g;
    return g;
}

#define REQUIRE_GGML()                                                                                         \
    do {                                                                                                       \
        if (!ggml().handle) GTEST_SKIP() << "ggml not found (" << ggml().error << "): run scripts/setup.sh";     \
        ASSERT_NE(ggml().quantize_chunk, nullptr);                                                             \
    } while (0)

// Rows that exercise every branch of the searches: Gaussian weights, heavy tails, one large outlier per block, blocks
// that are all zero, constant, all positive or all negative, tiny magnitudes, and values that sit on rounding ties.
std::vector<float> test_rows(int64_t rows, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gauss(0.f, 1.f);
    std::student_t_distribution<float> heavy(2.f);
    std::vector<float> x(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; ++r) {
        float* row = x.data() + r * n;
        const float scale = std::pow(10.f, static_cast<float>(static_cast<int>(r % 7) - 4));  // 1e-4 … 1e2
        for (int64_t j = 0; j < n; ++j) {
            const int64_t block = j / 32;
            float v;
            switch ((r + block) % 9) {
                case 0: v = heavy(rng); break;
                case 1: v = (j % 32 == 5) ? 40.f * gauss(rng) : gauss(rng); break;
                case 2: v = 0.f; break;
                case 3: v = 0.75f; break;
                case 4: v = std::fabs(gauss(rng)) + 0.5f; break;
                case 5: v = -std::fabs(gauss(rng)) - 0.1f; break;
                case 6: v = static_cast<float>(static_cast<int>(gauss(rng) * 8)) / 16.f; break;  // ties
                default: v = gauss(rng);
            }
            row[j] = v * scale;
        }
    }
    return x;
}

std::vector<float> test_importance(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::exponential_distribution<float> e(1.f);
    std::vector<float> w(static_cast<size_t>(n));
    for (float& v : w) v = e(rng) * 3.f + 1e-3f;
    return w;
}

struct Case {
    DType type;
    const char* name;
};

class QuantsVsGgml : public ::testing::TestWithParam<Case> {};

TEST_P(QuantsVsGgml, SameBytesAndSameFloats) {
    REQUIRE_GGML();
    const Case c = GetParam();
    const int64_t rows = 21, n = 1024;
    const std::vector<float> x = test_rows(rows, n, 1234u + static_cast<uint32_t>(c.type));
    const std::vector<float> imp = test_importance(n, 99u + static_cast<uint32_t>(c.type));
    const size_t bytes = static_cast<size_t>(rows) * quant::row_bytes(c.type, n);
    const auto dequant = ggml().sym<DequantizeRow>(std::string("dequantize_row_") + c.name);
    ASSERT_NE(dequant, nullptr) << c.name;
    for (const float* w : {static_cast<const float*>(nullptr), imp.data()}) {
        SCOPED_TRACE(w ? "with an importance matrix" : "without an importance matrix");
        std::vector<uint8_t> ours(bytes, 0xAB), theirs(bytes, 0xCD);
        ASSERT_EQ(quant::quantize(c.type, x.data(), ours.data(), rows, n, w), bytes);
        ASSERT_EQ(ggml().quantize_chunk(static_cast<int>(c.type), x.data(), theirs.data(), 0, rows, n, w), bytes);
        size_t first = bytes;
        for (size_t i = 0; i < bytes; ++i)
            if (ours[i] != theirs[i]) {
                first = i;
                break;
            }
        EXPECT_EQ(first, bytes) << c.name << ": first differing byte " << first << " (row " << first / quant::row_bytes(c.type, n)
                                << ", block " << (first % quant::row_bytes(c.type, n)) / quant::block_bytes(c.type) << ")";
        // dequantisation of ggml's bytes: bit for bit
        std::vector<float> a(static_cast<size_t>(rows * n)), b(a.size());
        quant::dequantize(c.type, theirs.data(), a.data(), rows * n);
        dequant(theirs.data(), b.data(), rows * n);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << c.name << ": dequantised values differ";
        // the weight type's widening (AVX2 for Q8_0 and Q4_0: a quantised cache's value rows, QLoRA's tiles): the same
        std::vector<float> wide(a.size());
        weight_type(c.type, "test").to_f32(theirs.data(), wide.data(), rows * n);
        EXPECT_EQ(std::memcmp(wide.data(), b.data(), wide.size() * 4), 0) << c.name << ": WeightType::to_f32 differs";
        // and the quantisation error is what the type promises (a sanity bound, not the reference)
        double err = 0, ref = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            err += (a[i] - x[i]) * (a[i] - x[i]);
            ref += x[i] * x[i];
        }
        EXPECT_LT(err / ref, 0.1) << c.name;
    }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantsVsGgml,
                         ::testing::Values(Case{DType::Q4_0, "q4_0"}, Case{DType::Q4_1, "q4_1"}, Case{DType::Q5_0, "q5_0"},
                                           Case{DType::Q5_1, "q5_1"}, Case{DType::Q8_0, "q8_0"}, Case{DType::Q2_K, "q2_K"},
                                           Case{DType::Q3_K, "q3_K"}, Case{DType::Q4_K, "q4_K"}, Case{DType::Q5_K, "q5_K"},
                                           Case{DType::Q6_K, "q6_K"}, Case{DType::IQ4_NL, "iq4_nl"}, Case{DType::IQ4_XS, "iq4_xs"}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// The activations' K-quant type (used by the integer dot products): quantize_row_q8_K_ref and its dequantisation.
TEST(QuantsVsGgml, Q8KActivations) {
    REQUIRE_GGML();
    const auto ref = ggml().sym<QuantizeRowRef>("quantize_row_q8_K_ref");
    ASSERT_NE(ref, nullptr);
    std::vector<float> x = test_rows(8, 1024, 7);
    for (float& v : x)
        if (v == 0.f) v = 1e-3f;  // ggml leaves bsums unset for an all-zero block
    const size_t nb = x.size() / 256;
    std::vector<quant::BlockQ8_K> ours(nb), theirs(nb);
    quant::quantize_q8_K_ref(x.data(), ours.data(), static_cast<int64_t>(x.size()));
    ref(x.data(), theirs.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(std::memcmp(ours.data(), theirs.data(), nb * sizeof(quant::BlockQ8_K)), 0);
}

}  // namespace

// ---- the products: ggml's CPU library (its AVX2 build, libggml-cpu-haswell.so, beside libggml-base.so) ----

namespace {

using VecDot = void (*)(int n, float* s, size_t bs, const void* x, size_t bx, const void* y, size_t by, int nrc);
using FromFloat = void (*)(const float* x, void* y, int64_t k);

struct GgmlCpu {
    void* handle = nullptr;
    std::string error;
    GgmlCpu() {
        const char* p = std::getenv("LLMFORGE_GGML_CPU_LIB");
        std::string path = p && *p ? p : LLMFORGE_SOURCE_DIR "/tests/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-cpu-haswell.so";
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
            error = "this CPU has no AVX2";
            return;
        }
        (void)ggml();  // libggml-base.so first (its f16 table initialised)
        handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            error = dlerror();
            return;
        }
        if (auto init = reinterpret_cast<void (*)()>(dlsym(handle, "ggml_cpu_init"))) init();
    }
    template <class F>
    F sym(const std::string& name) const { return reinterpret_cast<F>(dlsym(handle, name.c_str())); }
};

const GgmlCpu& ggml_cpu() {
    static const GgmlCpu g;
    return g;
}

struct DotCase {
    DType type;
    const char* name;
    const char* act;
};

class QuantDotsVsGgml : public ::testing::TestWithParam<DotCase> {};

// The activations quantised as ggml's CPU backend quantises them (bit for bit), and each weight row's product with
// them equal to ggml's vec_dot to rounding (ggml's SIMD kernels add the same exact block terms in another order).
TEST_P(QuantDotsVsGgml, ActivationsAndProducts) {
    if (!ggml_cpu().handle) GTEST_SKIP() << "ggml's CPU library not loaded (" << ggml_cpu().error << "): run scripts/setup.sh";
    REQUIRE_GGML();
    const DotCase c = GetParam();
    const auto from_float = ggml_cpu().sym<FromFloat>(std::string("quantize_row_") + c.act);
    const auto dot = ggml_cpu().sym<VecDot>(std::string("ggml_vec_dot_") + c.name + "_" + c.act);
    ASSERT_NE(from_float, nullptr);
    ASSERT_NE(dot, nullptr);
    // 28 rows: two threads' ranges of 14 take a tile of 8 rows, one of 4 and the last two one by one (or in pairs)
    const int64_t rows = 28, n = 2048;
    const std::vector<float> w = test_rows(rows, n, 77u + static_cast<uint32_t>(c.type));
    std::vector<float> x = test_rows(1, n, 5u);
    for (size_t i = 0; i < x.size(); ++i) x[i] = x[i] * 0.5f + 0.01f * static_cast<float>(i % 13);  // no all-zero blocks
    std::vector<uint8_t> wq(static_cast<size_t>(rows) * quant::row_bytes(c.type, n));
    quant::quantize(c.type, w.data(), wq.data(), rows, n);
    const DType act = quant::activation_type(c.type);
    std::vector<uint8_t> ours(quant::row_bytes(act, n)), theirs(ours.size());
    quant::quantize_activations(act, x.data(), ours.data(), n);
    from_float(x.data(), theirs.data(), n);
    EXPECT_EQ(std::memcmp(ours.data(), theirs.data(), ours.size()), 0) << c.act << ": quantised activations differ";
    std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
    quant::dequantize(act, theirs.data(), xd.data(), n);
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* row = wq.data() + static_cast<size_t>(r) * quant::row_bytes(c.type, n);
        float s = 0;
        dot(static_cast<int>(n), &s, 0, row, 0, theirs.data(), 0, 1);
        const float mine = quant::vec_dot(c.type, row, theirs.data(), n);
        quant::dequantize(c.type, row, wd.data(), n);
        double mag = 0;
        for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wd[i]) * xd[i]);
        EXPECT_NEAR(mine, s, 2e-6 * mag + 1e-30) << c.name << " row " << r;
    }
    // The matrix products llmforge runs (the SIMD kernels of the active instruction set): for Q8_0, Q4_K and Q5_K they
    // keep ggml's lanes and order, so each output equals ggml's vec_dot bit for bit — alone (decoding) and with other
    // activation rows (prompts: tiles of four). (Q6_K keeps c392e50's order, which the newer ggml from npm changed:
    // its digits are pinned against llama.cpp c392e50 by tests/anchor/llamacpp_quantize.sh; here it is held to rounding.)
    const bool simd = std::string(kernels::isa_name()) != "scalar";  // LLMFORGE_ISA=scalar: the portable loops, to rounding
    const bool exact = simd && (c.type == DType::Q8_0 || c.type == DType::Q5_0 || c.type == DType::Q4_1 || c.type == DType::Q5_1 ||
                                c.type == DType::Q2_K || c.type == DType::Q3_K || c.type == DType::Q4_K || c.type == DType::Q5_K ||
                                c.type == DType::IQ4_XS);
    const WeightType& wt = weight_type(c.type, "test");
    ThreadPool pool(2);
    std::vector<float> X(static_cast<size_t>(5 * n));
    for (int64_t i = 0; i < 5; ++i)
        for (int64_t j = 0; j < n; ++j) X[static_cast<size_t>(i * n + j)] = x[static_cast<size_t>(j)] * (1.0f + 0.25f * static_cast<float>(i));
    std::vector<float> Y(static_cast<size_t>(5 * rows)), y1(static_cast<size_t>(rows));
    wt.matmul_rowwise(wq.data(), X.data(), Y.data(), 5, rows, n, pool);
    for (int64_t i = 0; i < 5; ++i) {
        std::vector<uint8_t> xq(quant::row_bytes(act, n));
        from_float(X.data() + i * n, xq.data(), n);
        wt.matvec(wq.data(), X.data() + i * n, y1.data(), rows, n, pool);
        for (int64_t r = 0; r < rows; ++r) {
            float s = 0;
            dot(static_cast<int>(n), &s, 0, wq.data() + static_cast<size_t>(r) * quant::row_bytes(c.type, n), 0, xq.data(), 0, 1);
            const float tile = Y[static_cast<size_t>(i * rows + r)], alone = y1[static_cast<size_t>(r)];
            EXPECT_EQ(tile, alone) << c.name << ": row " << r << " of activation row " << i << " differs with others in the product";
            if (exact) {
                EXPECT_EQ(alone, s) << c.name << ": row " << r << ", activation row " << i << " not ggml's vec_dot bit for bit";
            } else {
                std::vector<float> wr(static_cast<size_t>(n)), xr(static_cast<size_t>(n));
                quant::dequantize(c.type, wq.data() + static_cast<size_t>(r) * quant::row_bytes(c.type, n), wr.data(), n);
                quant::dequantize(act, xq.data(), xr.data(), n);
                double mag = 0;
                for (int64_t j = 0; j < n; ++j) mag += std::fabs(static_cast<double>(wr[j]) * xr[j]);
                EXPECT_NEAR(alone, s, 2e-6 * mag + 1e-30) << c.name << ": row " << r << ", activation row " << i;
            }
        }
    }
    // products of 1, 2, 3, 6 and 7 activation rows (decoding, a short verification pass, the rows left after tiles of
    // four): each output is the row's alone, whichever tile computed it
    std::vector<float> Xm(static_cast<size_t>(7 * n));
    for (int64_t i = 0; i < 7; ++i)
        for (int64_t j = 0; j < n; ++j) Xm[static_cast<size_t>(i * n + j)] = x[static_cast<size_t>(j)] * (1.0f - 0.125f * static_cast<float>(i));
    for (int64_t m : {1, 2, 3, 6, 7}) {
        std::vector<float> Ym(static_cast<size_t>(m * rows));
        wt.matmul_rowwise(wq.data(), Xm.data(), Ym.data(), m, rows, n, pool);
        for (int64_t i = 0; i < m; ++i) {
            wt.matvec(wq.data(), Xm.data() + i * n, y1.data(), rows, n, pool);
            for (int64_t r = 0; r < rows; ++r)
                EXPECT_EQ(Ym[static_cast<size_t>(i * rows + r)], y1[static_cast<size_t>(r)]) << c.name << ": " << m << " activation rows, row " << r << " of " << i;
        }
    }
}

// Q4_0 matrices of a multiple of 8 rows: llama.cpp's CPU backend repacks them (rows interleaved by eight, nibbles
// made signed) and multiplies them with ggml_gemv_q4_0_8x8_q8_0 (one activation row) and ggml_gemm_q4_0_8x8_q8_0
// (groups of four, the activations interleaved by ggml_quantize_mat_t). llmforge keeps the rows as stored and computes
// each output in that order: every output equals ggml's bit for bit, whether decoded alone or in a prompt.
TEST(QuantDotsVsGgml, Q4_0RepackedOrder) {
    if (!ggml_cpu().handle) GTEST_SKIP() << "ggml's CPU library not loaded (" << ggml_cpu().error << "): run scripts/setup.sh";
    REQUIRE_GGML();
    using Gemx = void (*)(int n, float* s, size_t bs, const void* vx, const void* vy, int nr, int nc);
    using QuantizeMat = void (*)(const float* x, void* y, int64_t nrow, int64_t n_per_row);
    const auto gemv = ggml_cpu().sym<Gemx>("ggml_gemv_q4_0_8x8_q8_0");
    const auto gemm = ggml_cpu().sym<Gemx>("ggml_gemm_q4_0_8x8_q8_0");
    const auto qmat = ggml_cpu().sym<QuantizeMat>("_Z19ggml_quantize_mat_tILl8EL9ggml_type8EEvPKfPvll");  // ggml_quantize_mat_t<8, Q8_0>: interleaved by 8
    const auto from_float = ggml_cpu().sym<FromFloat>("quantize_row_q8_0");
    if (!gemv || !gemm || !qmat) GTEST_SKIP() << "this ggml build does not export its repacked Q4_0 kernels";
    const int64_t rows = 24, n = 2048, nb = n / 32, m = 6;
    const std::vector<float> w = test_rows(rows, n, 91u);
    std::vector<uint8_t> wq(static_cast<size_t>(rows) * quant::row_bytes(DType::Q4_0, n));
    quant::quantize(DType::Q4_0, w.data(), wq.data(), rows, n);
    // block_q4_0x8: the eight rows' scales, then 16 chunks of 8 bytes (chunk i: row i % 8, bytes (i / 8)·8 …), ^ 0x88
    std::vector<uint8_t> packed(wq.size());
    const auto* src = reinterpret_cast<const quant::BlockQ4_0*>(wq.data());
    uint8_t* dst = packed.data();
    for (int64_t g = 0; g < rows; g += 8)
        for (int64_t b = 0; b < nb; ++b, dst += 8 * sizeof(quant::BlockQ4_0)) {
            for (int r = 0; r < 8; ++r) std::memcpy(dst + 2 * r, &src[(g + r) * nb + b].d, 2);
            for (int i = 0; i < 16; ++i)
                for (int j = 0; j < 8; ++j) dst[16 + i * 8 + j] = src[(g + i % 8) * nb + b].qs[(i / 8) * 8 + j] ^ 0x88;
        }
    std::vector<float> X(static_cast<size_t>(m * n));
    const std::vector<float> x = test_rows(m, n, 13u);
    for (size_t i = 0; i < X.size(); ++i) X[i] = x[i] * 0.5f + 0.01f * static_cast<float>(i % 11);
    const WeightType& wt = weight_type(DType::Q4_0, "test");
    ThreadPool pool(2);
    std::vector<float> Y(static_cast<size_t>(m * rows)), y1(static_cast<size_t>(rows)), ref(static_cast<size_t>(rows));
    wt.matmul_rowwise(wq.data(), X.data(), Y.data(), m, rows, n, pool);
    for (int64_t i = 0; i < m; ++i) {
        std::vector<uint8_t> xq(quant::row_bytes(DType::Q8_0, n));
        from_float(X.data() + i * n, xq.data(), n);
        gemv(static_cast<int>(n), ref.data(), 0, packed.data(), xq.data(), 1, static_cast<int>(rows));
        wt.matvec(wq.data(), X.data() + i * n, y1.data(), rows, n, pool);
        for (int64_t r = 0; r < rows; ++r) {
            EXPECT_EQ(y1[static_cast<size_t>(r)], ref[static_cast<size_t>(r)]) << "decoding: row " << r << " of activation row " << i;
            EXPECT_EQ(Y[static_cast<size_t>(i * rows + r)], ref[static_cast<size_t>(r)]) << "prompt: row " << r << " of activation row " << i;
        }
    }
    // the first four activation rows through ggml's gemm (interleaved activations) give the same outputs again
    std::vector<uint8_t> xq4(4 * quant::row_bytes(DType::Q8_0, n));
    qmat(X.data(), xq4.data(), 4, n);
    std::vector<float> g4(static_cast<size_t>(4 * rows));
    gemm(static_cast<int>(n), g4.data(), static_cast<size_t>(rows), packed.data(), xq4.data(), 4, static_cast<int>(rows));
    for (size_t k = 0; k < g4.size(); ++k) EXPECT_EQ(Y[k], g4[k]) << "gemm output " << k;

    // The same matrix interleaved by eight rows as repack_for_cpu lays it out for the SIMD kernels (quants.h): the same
    // bytes reordered (deinterleaving gives the rows back), and every output still ggml's — in prompts of 6 rows and
    // decoding — with each instruction set this CPU has (AVX2's madd pairs and AVX512-VNNI's vpdpbusd).
    const std::string isa0 = kernels::isa_name();
    int tried = 0;
    for (const char* isa : {"avx512", "avx2"}) {
        if (!kernels::set_isa(isa)) continue;
        if (!wt.interleavable(rows, n)) continue;
        ++tried;
        std::vector<uint8_t> inter(wq.size()), back(wq.size());
        wt.interleave(wq.data(), inter.data(), rows, n);
        EXPECT_NE(inter, wq);
        quant::deinterleave_q4_0(inter.data(), back.data(), rows, n);
        EXPECT_EQ(back, wq) << "deinterleaving does not give the rows back";
        std::vector<float> Yi(static_cast<size_t>(m * rows), -1.0f), yi(static_cast<size_t>(rows));
        wt.matmul_interleaved(inter.data(), X.data(), Yi.data(), m, rows, n, pool);
        for (size_t k = 0; k < Yi.size(); ++k) EXPECT_EQ(Yi[k], Y[k]) << isa << ": interleaved prompt output " << k;
        for (int64_t i = 0; i < m; ++i) {
            wt.matmul_interleaved(inter.data(), X.data() + i * n, yi.data(), 1, rows, n, pool);
            for (int64_t r = 0; r < rows; ++r)
                EXPECT_EQ(yi[static_cast<size_t>(r)], Y[static_cast<size_t>(i * rows + r)]) << isa << ": interleaved decoding, row " << r << " of " << i;
        }
    }
    kernels::set_isa(isa0.c_str());
    if (isa0 == "avx512" || isa0 == "avx2") {
        EXPECT_GT(tried, 0) << "an x86 CPU with AVX2 has the interleaved kernel";
    }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantDotsVsGgml,
                         ::testing::Values(DotCase{DType::Q4_0, "q4_0", "q8_0"}, DotCase{DType::Q4_1, "q4_1", "q8_1"},
                                           DotCase{DType::Q5_0, "q5_0", "q8_0"}, DotCase{DType::Q5_1, "q5_1", "q8_1"},
                                           DotCase{DType::Q8_0, "q8_0", "q8_0"}, DotCase{DType::Q2_K, "q2_K", "q8_K"},
                                           DotCase{DType::Q3_K, "q3_K", "q8_K"}, DotCase{DType::Q4_K, "q4_K", "q8_K"},
                                           DotCase{DType::Q5_K, "q5_K", "q8_K"}, DotCase{DType::Q6_K, "q6_K", "q8_K"},
                                           DotCase{DType::IQ4_NL, "iq4_nl", "q8_0"}, DotCase{DType::IQ4_XS, "iq4_xs", "q8_K"}),
                         [](const ::testing::TestParamInfo<DotCase>& i) { return std::string(i.param.name); });

}  // namespace
