// Kernels, UTF-8 streaming, sampling, GGUF round trips, presets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <filesystem>
#include <random>
#include <thread>

#include "core/kernels.h"
#include "core/kernels_impl.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "llmforge/error.h"
#include "llmforge/generate.h"
#include "llmforge/gguf.h"
#include "llmforge/log.h"
#include "llmforge/model.h"
#include "llmforge/sampler.h"
#include "llmforge/utf8.h"
#include "test_util.h"

using namespace llmforge;

// Every ISA's matvec and matmul against a double-precision reference, for every weight type and awkward sizes.
TEST(Kernels, MatvecAndMatmulMatchDoubleReference) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0, 1);
    ThreadPool pool(2);
    for (const char* isa : {"scalar", "avx2", "avx512"}) {
        if (!kernels::set_isa(isa)) continue;
        for (DType t : {DType::F32, DType::F16, DType::BF16}) {
            for (auto [rows, cols, n] : {std::tuple<int, int, int>{1, 1, 1}, {7, 33, 1}, {13, 100, 3}, {64, 256, 9}, {130, 77, 17}}) {
                std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(n * cols));
                for (auto& v : w) v = nd(rng);
                for (auto& v : x) v = nd(rng);
                std::vector<uint8_t> wb(w.size() * dtype_size(t));
                convert_from_f32(t, w.data(), wb.data(), w.size());
                std::vector<float> wr(w.size());  // the weights as stored
                convert_to_f32(t, wb.data(), wr.data(), w.size());
                std::vector<float> y(static_cast<size_t>(n * rows));
                kernels::matmul(t, wb.data(), x.data(), y.data(), n, rows, cols, pool);
                for (int i = 0; i < n; ++i)
                    for (int r = 0; r < rows; ++r) {
                        double ref = 0, mag = 0;
                        for (int c = 0; c < cols; ++c) {
                            // f16 (bf16) weights multiply x rounded to f16 (bf16) first, as llama.cpp's do (decoding,
                            // and prompts of up to 128 rows: the register-tiled path; the packed GEMM beyond takes x as it is)
                            const float xc = t == DType::F16    ? f16_to_f32(f32_to_f16(x[i * cols + c]))
                                             : t == DType::BF16 ? bf16_to_f32(f32_to_bf16(x[i * cols + c]))
                                                                : x[i * cols + c];
                            ref += static_cast<double>(wr[r * cols + c]) * xc;
                            mag += std::fabs(static_cast<double>(wr[r * cols + c]) * xc);
                        }
                        EXPECT_NEAR(y[i * rows + r], ref, 1e-5 * mag + 1e-6) << isa << " " << dtype_name(t) << " " << rows << "x" << cols;
                    }
            }
        }
    }
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
}

// Decoding's lone-row products read several weight rows side by side where kernels::stream_rows says so (the ctest
// entries Kernels.RowsSideBySide{2,4} force it): every output the same bits as the one-row dot product, on every ISA,
// for any row range (odd starts, remainders) and row length (tails).
TEST(Kernels, RowsSideBySideEqualOneRowProducts) {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0, 1);
    for (const char* isa : {"scalar", "avx2", "avx512"}) {
        if (!kernels::set_isa(isa)) continue;
        const kernels::KernelTable& k = kernels::active();
        for (int64_t K : {7, 64, 2061}) {
            const int64_t rows = 67;
            std::vector<float> w(static_cast<size_t>(rows * K)), x(static_cast<size_t>(K)), y(static_cast<size_t>(rows));
            for (auto& v : w) v = nd(rng);
            for (auto& v : x) v = nd(rng);
            std::vector<uint16_t> wh(w.size()), xh(x.size());
            for (size_t i = 0; i < w.size(); ++i) wh[i] = f32_to_f16(w[i]);
            for (size_t i = 0; i < x.size(); ++i) xh[i] = f32_to_f16(x[i]);
            for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {3, 66}, {5, 6}}) {
                std::fill(y.begin(), y.end(), -1.0f);
                k.rows_f32(w.data(), x.data(), y.data(), K, r0, r1);
                for (int64_t r = 0; r < rows; ++r) {
                    const float want = r >= r0 && r < r1 ? k.dot_f32(w.data() + r * K, x.data(), K) : -1.0f;
                    ASSERT_EQ(y[r], want) << isa << " f32 K=" << K << " row " << r << " of [" << r0 << ", " << r1 << ")";
                }
                std::fill(y.begin(), y.end(), -1.0f);
                k.rows_f16_f16(wh.data(), xh.data(), y.data(), K, r0, r1);
                for (int64_t r = 0; r < rows; ++r) {
                    const float want = r >= r0 && r < r1 ? k.dot_f16_f16(wh.data() + r * K, xh.data(), K) : -1.0f;
                    ASSERT_EQ(y[r], want) << isa << " f16 K=" << K << " row " << r << " of [" << r0 << ", " << r1 << ")";
                }
            }
        }
    }
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
}

// product(X, Y, m): Y = the first m rows of X times the weights. The first m rows alone, and lone rows from the middle
// of the batch, give the bits they have in all n rows' product y.
template <class Product>
void expect_batch_invariant(Product product, const std::vector<float>& x, const std::vector<float>& y, int n, int rows, int cols, const std::string& what) {
    for (int m : {1, 2, 3, 4, 5, 12, 13, 40}) {
        std::vector<float> ym(static_cast<size_t>(m * rows));
        product(x.data(), ym.data(), m);
        ASSERT_EQ(std::memcmp(ym.data(), y.data(), ym.size() * sizeof(float)), 0) << what << " n=" << m;
    }
    std::vector<float> y1(static_cast<size_t>(rows));
    for (int i : {0, 77, n - 1}) {
        product(x.data() + i * cols, y1.data(), 1);
        ASSERT_EQ(std::memcmp(y1.data(), y.data() + i * rows, y1.size() * sizeof(float)), 0) << what << " row " << i;
    }
}

// f32 weights repacked into panels (kernels::pack_panels): the product against a double-precision reference, each
// output bit for bit the same whatever n is (decoding = any batch; n beyond the 128-row block and K beyond one
// 768-value chunk included), and the same bits on every instruction set (the portable form sums in the SIMD order).
TEST(Kernels, PanelLayoutMatchesReferenceAndIsBatchInvariant) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 1);
    ThreadPool pool(2);
    int checked = 0;
    for (auto [rows, cols] : {std::pair<int, int>{32, 1}, {64, 33}, {96, 768}, {160, 1000}, {32, 1600}}) {
        std::vector<float> w(static_cast<size_t>(rows * cols));
        for (auto& v : w) v = nd(rng);
        std::vector<float> wp = w;
        kernels::pack_panels(wp.data(), rows, cols, pool);
        for (int r = 0; r < rows; ++r)  // the layout kernels.h states
            for (int c = 0; c < cols; c += 7) ASSERT_EQ(wp[(r / 32) * 32 * cols + c * 32 + r % 32], w[r * cols + c]);
        const int n = 131;
        std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
        for (auto& v : x) v = nd(rng);
        std::vector<std::vector<float>> by_isa;
        for (const char* isa : {"avx512", "avx2", "scalar"}) {
            if (!kernels::set_isa(isa)) continue;
            kernels::matmul_panels(wp.data(), x.data(), y.data(), n, rows, cols, pool);
            for (int i = 0; i < n; ++i)
                for (int r = 0; r < rows; ++r) {
                    double ref = 0, mag = 0;
                    for (int c = 0; c < cols; ++c) {
                        ref += static_cast<double>(w[r * cols + c]) * x[i * cols + c];
                        mag += std::fabs(static_cast<double>(w[r * cols + c]) * x[i * cols + c]);
                    }
                    ASSERT_NEAR(y[i * rows + r], ref, 1e-5 * mag + 1e-6) << isa << " " << rows << "x" << cols << " row " << i;
                }
            const int R = rows, C = cols;  // (a lambda may not capture structured bindings before C++20)
            expect_batch_invariant([&](const float* X, float* Y, int m) { kernels::matmul_panels(wp.data(), X, Y, m, R, C, pool); }, x, y, n,
                                   rows, cols, std::string(isa) + " " + std::to_string(rows) + "x" + std::to_string(cols));
            by_isa.push_back(y);
            ++checked;
        }
        for (const auto& other : by_isa) EXPECT_EQ(std::memcmp(other.data(), by_isa[0].data(), other.size() * sizeof(float)), 0) << rows << "x" << cols;
    }
    EXPECT_GE(checked, 10);
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
    std::vector<float> odd(40 * 8);
    EXPECT_THROW(kernels::pack_panels(odd.data(), 40, 8, pool), Error);
}

// f16 weights in panels (kernels::pack_panels_f16, out of place and in place): the layout kernels.h states; the product
// against a double-precision reference of the f16 weights times the activations rounded to f16; each output bit for
// bit the same whatever n is (decoding = any batch), on AVX-512 and in the portable form alike.
TEST(Kernels, F16PanelLayoutMatchesReferenceAndIsBatchInvariant) {
    std::mt19937 rng(6);
    std::normal_distribution<float> nd(0, 1);
    ThreadPool pool(2);
    int checked = 0;
    for (auto [rows, cols] : {std::pair<int, int>{32, 1}, {64, 33}, {96, 768}, {160, 1000}, {32, 1600}}) {
        std::vector<uint16_t> w(static_cast<size_t>(rows * cols));
        for (auto& v : w) v = f32_to_f16(nd(rng));
        std::vector<uint16_t> wp(w.size()), inplace = w;
        kernels::pack_panels_f16(w.data(), wp.data(), rows, cols, pool);
        kernels::pack_panels_f16(inplace.data(), inplace.data(), rows, cols, pool);
        ASSERT_EQ(inplace, wp);
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; c += 7) ASSERT_EQ(wp[(r / 32) * 32 * cols + c * 32 + r % 32], w[r * cols + c]);
        const int n = 131;
        std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
        for (auto& v : x) v = nd(rng);
        std::vector<std::vector<float>> by_isa;
        for (const char* isa : {"avx512", "scalar"}) {
            if (!kernels::set_isa(isa)) continue;
            kernels::matmul_panels_f16(wp.data(), x.data(), y.data(), n, rows, cols, pool);
            for (int i = 0; i < n; ++i)
                for (int r = 0; r < rows; ++r) {
                    double ref = 0, mag = 0;
                    for (int c = 0; c < cols; ++c) {
                        const double p = static_cast<double>(f16_to_f32(w[r * cols + c])) * f16_to_f32(f32_to_f16(x[i * cols + c]));
                        ref += p;
                        mag += std::fabs(p);
                    }
                    ASSERT_NEAR(y[i * rows + r], ref, 1e-5 * mag + 1e-6) << isa << " " << rows << "x" << cols << " row " << i;
                }
            const int R = rows, C = cols;
            expect_batch_invariant([&](const float* X, float* Y, int m) { kernels::matmul_panels_f16(wp.data(), X, Y, m, R, C, pool); }, x, y,
                                   n, rows, cols, std::string(isa) + " " + std::to_string(rows) + "x" + std::to_string(cols));
            by_isa.push_back(y);
            ++checked;
        }
        for (const auto& other : by_isa) EXPECT_EQ(std::memcmp(other.data(), by_isa[0].data(), other.size() * sizeof(float)), 0) << rows << "x" << cols;
    }
    EXPECT_GE(checked, 5);
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
    std::vector<uint16_t> odd(40 * 8);
    EXPECT_THROW(kernels::pack_panels_f16(odd.data(), odd.data(), 40, 8, pool), Error);
}

// The training GEMM: every layout of A and B, overwrite and accumulate, f32 and bf16, compact and strided (sub-matrix)
// operands, sizes that leave partial tiles, panels and k chunks (K odd, K > one chunk), on every ISA. bf16 is checked
// against the products of the bf16-rounded operands summed in double: the rounding is the only loss allowed.
TEST(Kernels, TrainingGemmAllLayoutsAndPrecisions) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 1);
    ThreadPool pool(2);
    auto rnd = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
    int checked_native_bf16 = 0;
    for (const char* isa : {"scalar", "avx2", "avx512"}) {
        if (!kernels::set_isa(isa)) continue;
        for (auto [n, rows, K] : {std::tuple<int, int, int>{1, 1, 1}, {5, 3, 7}, {13, 33, 17}, {30, 70, 1031}, {200, 40, 64}, {797, 37, 45}}) {
            for (int pad : {0, 3}) {
                for (int at = 0; at < 2; ++at) {
                    for (int bt = 0; bt < 2; ++bt) {
                        const int lda = (at ? n : K) + pad, ldb = (bt ? rows : K) + pad, ldc = rows + pad;
                        std::vector<float> a(static_cast<size_t>((at ? K : n) * lda)), b(static_cast<size_t>((bt ? K : rows) * ldb));
                        std::vector<float> c0(static_cast<size_t>(n * ldc));
                        for (auto& v : a) v = nd(rng);
                        for (auto& v : b) v = nd(rng);
                        for (auto& v : c0) v = nd(rng);
                        for (int acc = 0; acc < 2; ++acc) {
                            for (auto prec : {kernels::Precision::F32, kernels::Precision::BF16}) {
                                const bool bf = prec == kernels::Precision::BF16;
                                checked_native_bf16 += bf && kernels::has_native_bf16();
                                auto A = [&](int i, int k) { float v = at ? a[k * lda + i] : a[i * lda + k]; return bf ? rnd(v) : v; };
                                auto B = [&](int r, int k) { float v = bt ? b[k * ldb + r] : b[r * ldb + k]; return bf ? rnd(v) : v; };
                                std::vector<float> c = c0;
                                if (pad == 0) kernels::gemm(a.data(), at, b.data(), bt, c.data(), n, rows, K, acc, prec, pool);
                                else kernels::gemm(a.data(), lda, at, b.data(), ldb, bt, c.data(), ldc, n, rows, K, acc, prec, pool);
                                for (int i = 0; i < n; ++i) {
                                    for (int r = 0; r < ldc; ++r) {
                                        if (r >= rows) {  // the padding between rows of C is never written
                                            ASSERT_EQ(c[i * ldc + r], c0[i * ldc + r]);
                                            continue;
                                        }
                                        double ref = acc ? c0[i * ldc + r] : 0.0, mag = std::fabs(ref);
                                        for (int k = 0; k < K; ++k) {
                                            ref += static_cast<double>(A(i, k)) * B(r, k);
                                            mag += std::fabs(static_cast<double>(A(i, k)) * B(r, k));
                                        }
                                        ASSERT_NEAR(c[i * ldc + r], ref, 2e-6 * mag + 1e-6)
                                            << isa << " " << kernels::precision_name(prec) << " n=" << n << " rows=" << rows << " K=" << K
                                            << " a_t=" << at << " b_t=" << bt << " acc=" << acc << " pad=" << pad << " at " << i << "," << r;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
    if (kernels::has_native_bf16()) {
        EXPECT_GT(checked_native_bf16, 0);
    }
}

// The vectorised tanh (GELU's) and softmax exp against double, on every ISA, across the range and at odd lengths.
TEST(Kernels, TanhAndExpMatchStd) {
    std::vector<float> x;
    for (float v = -20.0f; v <= 20.0f; v += 0.00137f) x.push_back(v);
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-8f, 1e-4f, 88.0f, -100.0f, 1e30f, -1e30f}) x.push_back(v);
    for (const char* isa : {"scalar", "avx2", "avx512"}) {
        if (!kernels::set_isa(isa)) continue;
        for (size_t len : {x.size(), size_t{1}, size_t{7}, size_t{17}}) {
            std::vector<float> y(len, 5.0f);
            kernels::tanh(x.data(), y.data(), static_cast<int64_t>(len));
            double worst = 0;
            for (size_t i = 0; i < len; ++i) worst = std::max(worst, std::fabs(y[i] - std::tanh(static_cast<double>(x[i]))));
            EXPECT_LT(worst, 1.2e-7) << isa << " len " << len;
        }
        // softmax numerators: exp(x − max) and their sum, relative error against double
        for (size_t len : {x.size(), size_t{1}, size_t{5}, size_t{33}}) {
            std::vector<float> y(len, 5.0f);
            float mx = -INFINITY;
            for (size_t i = 0; i < len; ++i) mx = std::max(mx, std::min(x[i], 50.0f));
            std::vector<float> xs(x.begin(), x.begin() + static_cast<long>(len));
            for (auto& v : xs) v = std::min(v, 50.0f);
            const double sum = kernels::exp_shift_sum(xs.data(), y.data(), static_cast<int64_t>(len), mx);
            double ref_sum = 0, worst_rel = 0;
            for (size_t i = 0; i < len; ++i) {
                const double ref = std::exp(static_cast<double>(xs[i] - mx));  // the argument rounded to float, as both compute it
                ref_sum += ref;
                if (ref > 1e-30) worst_rel = std::max(worst_rel, std::fabs(y[i] - ref) / ref);
                else EXPECT_LT(y[i], 1e-30);
            }
            EXPECT_LT(worst_rel, 3e-7) << isa;
            EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum) << isa;
        }
    }
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
}

TEST(Utf8, StreamNeverSplitsACharacter) {
    const std::string text = "héllo 你好 🐶!";
    Utf8Stream s;
    std::string out;
    for (char c : text) {
        const std::string piece = s.push(std::string(1, c));
        EXPECT_TRUE(utf8_valid(piece)) << "half a character was emitted";
        out += piece;
    }
    out += s.flush();
    EXPECT_EQ(out, text);
    Utf8Stream bad;
    EXPECT_EQ(bad.push("a\xff" "b"), "a\xef\xbf\xbd" "b");  // invalid byte → U+FFFD
    EXPECT_EQ(bad.push("\xe4\xbd"), "");                    // incomplete: held back
    EXPECT_EQ(bad.flush(), "\xef\xbf\xbd");                 // truncated at the end
    EXPECT_FALSE(utf8_valid("\xc0\xaf"));                   // overlong
    EXPECT_FALSE(utf8_valid("\xed\xa0\x80"));               // surrogate
}

TEST(Sampler, GreedySeedAndFilters) {
    std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 0.5f};
    SamplerParams p;
    p.temp = 0;
    EXPECT_EQ(Sampler(p).sample(logits.data(), 5, {}), 1);
    p.repeat_penalty = 2.0f;  // token 1 seen: 2.0 → 1.0, so token 2 wins
    EXPECT_EQ(Sampler(p).sample(logits.data(), 5, {1}), 2);
    p = SamplerParams{};
    p.top_k = 1;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(Sampler(p).sample(logits.data(), 5, {}), 1);
    p = SamplerParams{};
    p.seed = 99;
    p.min_p = 0;
    p.top_p = 1;
    p.top_k = 0;
    p.temp = 1.0f;
    Sampler a(p), b(p);
    std::vector<int> counts(5, 0);
    for (int i = 0; i < 20000; ++i) {
        const int32_t x = a.sample(logits.data(), 5, {});
        EXPECT_EQ(x, b.sample(logits.data(), 5, {}));  // same seed, same draws
        ++counts[x];
    }
    // frequencies follow softmax(logits)
    double z = 0;
    for (float l : logits) z += std::exp(l);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(counts[i] / 20000.0, std::exp(logits[i]) / z, 0.015) << i;
    p.top_p = 0.5f;  // 0.5 of the mass is reached by the top token alone? softmax(2.0) ≈ 0.41, so two tokens remain
    Sampler c(p);
    for (int i = 0; i < 200; ++i) {
        const int32_t x = c.sample(logits.data(), 5, {});
        EXPECT_TRUE(x == 1 || x == 2) << x;
    }
}

// AtomicWriter: whatever the pieces, the file holds their bytes in order; before commit the temporary file holds
// exactly the whole 2 MiB blocks written so far (the block writes that let the page cache use 2 MiB folios), and a
// writer destroyed without commit leaves neither file.
TEST(AtomicWriter, BlocksKeepTheBytes) {
    constexpr size_t B = size_t(2) << 20;
    const std::string p = test::tmp_path("atomic.bin"), tmp = p + ".tmp." + std::to_string(::getpid());
    std::mt19937 rng(11);
    std::string want;
    {
        AtomicWriter w(p);
        for (size_t n : {size_t(0), size_t(1), size_t(4), B - 7, size_t(3), size_t(3), B, 2 * B + 5, size_t(100000), size_t(9), B - 1}) {
            std::string piece(n, '\0');
            for (char& c : piece) c = static_cast<char>(rng());
            if (n == 100000) {
                w.write_zeros(n);
                piece.assign(n, '\0');
            } else {
                w.write(piece.data(), piece.size());
            }
            want += piece;
            EXPECT_EQ(w.offset(), want.size());
            EXPECT_EQ(std::filesystem::file_size(tmp), want.size() / B * B) << "after " << want.size() << " bytes";
        }
        w.commit();
    }
    EXPECT_FALSE(std::filesystem::exists(tmp));
    EXPECT_EQ(test::read_file(p), want);
    {
        AtomicWriter w(p);
        const std::string big(3 * B, 'x');
        w.write(big.data(), big.size());
    }
    EXPECT_FALSE(std::filesystem::exists(tmp));
    EXPECT_EQ(test::read_file(p), want);  // the uncommitted writer left the file as it was
}

TEST(GGUF, WriteReadRoundTrip) {
    Model m = init_random(preset("gpt2-tiny"), DType::F16, 5);
    m.meta.set("general.answer", gguf::Value::i32(-42));
    m.meta.set("general.pi", gguf::Value::f32(3.25f));
    const std::string p = test::tmp_path("rt.gguf");
    save_model(m, p);
    Model r = load_model(p);
    EXPECT_EQ(r.config.arch, "gpt2");
    EXPECT_EQ(r.config.n_params(), m.config.n_params());
    EXPECT_EQ(r.meta.get_int("general.answer", 0), -42);
    EXPECT_EQ(r.meta.get_float("general.pi", 0), 3.25);
    EXPECT_EQ(r.owned_bytes, 0u);
    for (const auto& t : m.tensors) {
        const Tensor& u = r.get(t.name);
        EXPECT_EQ(u.shape, t.shape);
        if (t.shape.size() == 2) {
            ASSERT_EQ(u.dtype, DType::F16);
            EXPECT_EQ(std::memcmp(u.data, t.data, t.nbytes()), 0) << t.name;
        }
    }
    ASSERT_TRUE(r.vocab);
    EXPECT_EQ(r.vocab->pieces, m.vocab->pieces);
    // generation through the loaded model works and is reproducible
    ThreadPool pool(2);
    GenerateParams gp;
    gp.n_predict = 8;
    gp.sampling.seed = 3;
    Transformer t1(r, pool), t2(r, pool);
    EXPECT_EQ(generate(t1, *r.vocab, "abc", gp).tokens, generate(t2, *r.vocab, "abc", gp).tokens);
}

TEST(Presets, ParameterCounts) {
    EXPECT_EQ(preset("gpt2").n_params(), 124439808);  // GPT-2 small, tied embeddings
    EXPECT_NEAR(preset("gpt3-175b").n_params() / 1e9, 175.0, 1.0);
    EXPECT_NEAR(preset("llama2-70b").n_params() / 1e9, 69.0, 0.1);
    EXPECT_NEAR(preset("llama2-7b").n_params() / 1e9, 6.74, 0.01);
    EXPECT_NEAR(preset("tinyllama-1.1b").n_params() / 1e9, 1.10, 0.01);
    // bert-base-uncased counts 109,482,240 with its pooler (768·768 + 768), which an encoder preset leaves out
    EXPECT_EQ(preset("bert-base").n_params(), 109482240 - (768 * 768 + 768));
    // Turc et al.'s compact BERTs: embeddings 30522·H + 512·H + 2·H + LayerNorm 2·H, then L layers of
    // 4·(H² + H) attention + 2·4H² + 4H + H feed-forward + 2·2·H LayerNorms
    for (auto [name, H, L] : {std::tuple{"bert-tiny", 128LL, 2LL}, {"bert-mini", 256LL, 4LL}, {"bert-small", 512LL, 4LL}, {"bert-medium", 512LL, 8LL}})
        EXPECT_EQ(preset(name).n_params(), (30522 + 512 + 2 + 2) * H + L * (4 * (H * H + H) + 8 * H * H + 5 * H + 4 * H)) << name;
    EXPECT_THROW(preset("gpt5"), Error);
}

// `init` streams large models to disk; the streamed file must hold exactly the in-memory model.
TEST(Init, StreamedEqualsInMemory) {
    for (const char* name : {"llama-tiny", "gpt2-tiny"}) {
        for (DType t : {DType::F32, DType::BF16}) {
            const ModelConfig c = preset(name);
            const std::string a = test::tmp_path("mem.gguf"), b = test::tmp_path("stream.gguf");
            save_model(init_random(c, t, 11), a);
            init_random_gguf(c, t, 11, b);
            const Model ma = load_model(a), mb = load_model(b);
            ASSERT_EQ(ma.tensors.size(), mb.tensors.size());
            for (const auto& ta : ma.tensors) {
                const Tensor& tb = mb.get(ta.name);
                ASSERT_EQ(ta.dtype, tb.dtype) << ta.name;
                ASSERT_EQ(ta.shape, tb.shape) << ta.name;
                EXPECT_EQ(std::memcmp(ta.data, tb.data, ta.nbytes()), 0) << name << " " << ta.name;
            }
            EXPECT_EQ(ma.vocab->pieces, mb.vocab->pieces);
            EXPECT_EQ(mb.meta.get_string("general.source", ""), "llmforge init --seed 11");
        }
    }
}

// A resumed job's progress line: the steps done before the restart are shown but count neither in the rate nor in the
// ETA (a training run resumed at step 900 of 1000 once showed thousands of steps per second and an ETA of 0:00).
TEST(Progress, ResumedJobRateCountsOnlyThisRun) {
    std::string got;
    set_log_sink([&](const std::string& t) { got += t; }, true);
    {
        Progress p("training", 1000, "steps");
        p.resume_at(900);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        p.update(902);
        p.finish();
    }
    set_log_sink(nullptr);
    EXPECT_NE(got.find("902 steps/1000 steps"), std::string::npos) << got;
    const size_t at = got.rfind(" steps/s");
    ASSERT_NE(at, std::string::npos) << got;
    const size_t b = got.rfind(' ', at - 1);
    const double rate = std::stod(got.substr(b + 1, at - b - 1));
    EXPECT_GT(rate, 0.5) << got;
    EXPECT_LT(rate, 20.0) << got;  // 2 steps in ~0.3 s (counting the 900 would give ~3,000)
}
