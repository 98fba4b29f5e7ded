// CPU compute kernels. Weights are row-major [rows, cols] in f32, f16 or bf16; activations are f32.
//  - matvec: one activation vector (decoding). Memory-bound: our own SIMD kernels, AVX-512 or AVX2 chosen at run time.
//  - matmul: many activation rows (prompt processing). Compute-bound: our cache-blocked GEMM (it measured
//    2x faster than Debian's OpenBLAS sgemm here, see BENCHMARKS.md), f16/bf16 widened per packed panel.
#pragma once
#include <cstdint>

#include "core/threadpool.h"
#include "llmforge/dtype.h"

namespace llmforge::kernels {

// Name of the instruction set the kernels use on this CPU: "avx512", "avx2" or "scalar".
const char* isa_name();
// Force a given ISA ("avx512", "avx2", "scalar"); returns false if the CPU lacks it. For tests.
bool set_isa(const char* name);
// How many bytes ahead a lone weight row's dot product (decoding's matrix-vector products of f32, f16 and bf16)
// prefetches its weights, for weights of element_bytes bytes; 0: none, the hardware prefetchers alone. Chosen per
// microarchitecture by measurement (TinyLlama-1.1B decoding, 2 threads):
//   Intel Xeon (Sapphire Rapids): 2 KiB ahead, every type — f16 11.1 t/s against 7.7 without (1 KiB 9.9, 4 KiB 10.0);
//   AMD Zen 4 (family 0x19): none — prefetching measured slower (f16 23.0 / 15.7 / 15.8 t/s without, 20.1 / 15.2 /
//     14.4 with);
//   AMD Zen 5 (family 0x1A) and later: 1 KiB for f32 rows (9.2 -> 10.8 t/s; 2 KiB the same), none for 2-byte rows (f16
//     23.7–28.5 t/s with and without: no gain beyond the noise).
// LLMFORGE_PREFETCH=BYTES overrides it for every type (for measuring).
int64_t stream_prefetch_bytes(size_t element_bytes);
// Whether the quantised types' row kernels (core/quant_kernels_x86.cpp: Q8_0 … Q6_K, decoding's lone rows and the
// prompt's tiles) prefetch their weight stream, each at its own distance (a few blocks, 288–840 bytes ahead). By
// measurement (decoding, 2 threads, the two settings alternating in one session, medians of 4 rounds, 2026-12-05):
//   AMD Zen 5 (family 0x1A) and later: no — TinyLlama-1.1B tg64 Q8_0 27.2 t/s without against 23.5 with, Q6_K 36.6
//     against 31.2, Q4_0 43.6 against 40.5, Q4_K_M 37.3 against 37.2; the speculative pair's 63M and 9.3M Q8_0 models
//     and a 9.3M Q4_0 the same within the noise (261 / 1,551 / 1,967 t/s against 269 / 1,527 / 1,911), pp128 too;
//   elsewhere (Intel Xeon, AMD Zen 4): yes, the distances the kernels were written with (unmeasured against none).
// LLMFORGE_QUANT_PREFETCH=0|1 overrides it (for measuring).
bool quant_stream_prefetch();
// How many weight rows decoding's f32 and f16 matrix-vector products read side by side (1, 2 or 4; the results are the
// same bits: each row keeps its own accumulators and order), for weights of element_bytes bytes. By measurement
// (TinyLlama-1.1B decoding, 2 threads, alternating in one session):
//   AMD Zen 5 (family 0x1A) and later: 4 for f32 rows (10.8–11.4 t/s -> 13.8–14.1, against llama.cpp's 11.6–11.8:
//     four streams keep more misses in flight; read bandwidth ~62 GB/s), 1 for f16 (2: 17.6–18.1, 4: 19.2–19.9
//     against 23.7–26.9 with one);
//   elsewhere 1: on Zen 4 four rows side by side had measured 30 % slower (gemm_seq's lone-row comment); the Intel
//     Xeon is unmeasured.
// LLMFORGE_STREAM_ROWS=1|2|4 overrides it for every type (for measuring).
int stream_rows(size_t element_bytes);

// y[r] = sum_c W[r, c] * x[c]   for r in [0, rows). f16 weights multiply x rounded to f16 (as llama.cpp does).
void matvec(DType wt, const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool);

// Y[i, r] = sum_c X[i, c] * W[r, c]   for i in [0, n), r in [0, rows)        (Y = X · Wᵀ)
void matmul(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool);
// The same product with each output summed in one fixed order (one vector accumulator over k, lanes summed at the end,
// the tail in f32: dot_seq's order) whatever n is: batch-invariant, for decoding several sequences at once (the
// weights streamed once for all n rows, in register tiles of 4 weight rows × up to 4 activation rows; measured 195
// GFLOP/s on 2 cores for f16 at n ≥ 4, against 110 for the packed GEMM at n = 16).
void matmul_rowwise(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool);
// The same product with the summation order of llama.cpp's CPU backend (ggml, AVX-512): llamafile's tinyBLAS for
// several rows when cols % 16 == 0 and rows % 4 == 0, ggml_vec_dot_f32 otherwise (f32 weights; other types: matmul).
// Slower than matmul; used where results must round exactly as llama.cpp's (perplexity against llama-perplexity).
void matmul_ggml(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool);

// f32 weights in panel layout: for each group of kPanelRows rows, k-major — Wp[p·32·cols + k·32 + j] = W[32p + j, k]
// (rows % 32 == 0; the same bytes as the row-major matrix, reordered within each panel). The packed GEMM reads it
// without packing a panel per call (the per-call packing was ~16 % of an f32 prompt pass). Each output is summed in one
// fixed order whatever n is — per chunk of kPanelK values of k one FMA chain from zero, the chunks then added in turn —
// so n = 1 (decoding) and any batch give bit-identical results, on every instruction set.
constexpr int64_t kPanelRows = 32, kPanelK = 768;
// Reorders a row-major [rows, cols] f32 matrix into the panel layout (rows % kPanelRows == 0): from W into Wp, or in
// place (W == Wp; the one-argument form).
void pack_panels(const float* W, float* Wp, int64_t rows, int64_t cols, ThreadPool& pool);
void pack_panels(float* W, int64_t rows, int64_t cols, ThreadPool& pool);
// Y[i, r] = Σ_c X[i, c] W[r, c] (Y = X · Wᵀ) with W in panel layout.
void matmul_panels(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool);
// Whether this CPU's kernels have SIMD forms of the panel products (elsewhere they run as portable scalar code).
bool has_panel_kernels();
// f16 weights in the same panel layout (Wp[p·32·cols + k·32 + j] = W[32p + j, k], f16), written from a row-major
// matrix into memory of its own (the source is often a mapped file). The product rounds X to f16 value by value
// (llama.cpp's vec_dot_type for f16) and sums as matmul_panels does: batch-invariant, n = 1 included. The packed GEMM
// reads each panel's chunk as one contiguous stream (widened in its loads), where row-major f16 weights are gathered
// 32 rows at once.
void pack_panels_f16(const uint16_t* W, uint16_t* Wp, int64_t rows, int64_t cols, ThreadPool& pool);
void matmul_panels_f16(const uint16_t* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool);
bool has_f16_panel_kernels();

// General matrix product for training (the backward pass needs the transposed forms, without copying transposes):
//   C[i, r] (+)= Σ_k A(i, k) · B(r, k)        for i in [0, n), r in [0, rows), k in [0, K)
//   A(i, k) = a[i·K + k]  (a is [n, K])     or, with a_t, a[k·n + i]     (a is [K, n])
//   B(r, k) = b[r·K + k]  (b is [rows, K])  or, with b_t, b[k·rows + r]  (b is [K, rows])
// C is [n, rows], row-major. accumulate adds the product to C instead of overwriting it.
// Precision::BF16 rounds A and B to bfloat16 (round to nearest even) and accumulates the products in f32: AVX512-BF16
// (vdpbf16ps, two products per lane per instruction) where the CPU has it, the same rounding with f32 FMAs elsewhere.
enum class Precision { F32, BF16 };
const char* precision_name(Precision p);
void gemm(const float* a, bool a_t, const float* b, bool b_t, float* c, int64_t n, int64_t rows, int64_t K, bool accumulate,
          Precision prec, ThreadPool& pool);
// The same on sub-matrices: lda, ldb, ldc are the distances between consecutive rows as stored (a[i·lda + k] or, with
// a_t, a[k·lda + i]; likewise b; c[i·ldc + r]).
void gemm(const float* a, int64_t lda, bool a_t, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n, int64_t rows,
          int64_t K, bool accumulate, Precision prec, ThreadPool& pool);
// Whether Precision::BF16 runs on native bf16 dot-product instructions here.
bool has_native_bf16();
// Whether the AVX-512 kernels are active and the CPU has AVX512-VNNI (vpdpbusd: the quantised types' byte products).
bool has_vnni();

// y[i] = tanh(x[i]) (absolute error < 1e-7; vectorised). x and y may be the same array.
void tanh(const float* x, float* y, int64_t n);
// y[i] = exp(x[i] − shift) for x[i] ≤ shift (softmax numerators; relative error < 3e-7); returns Σ y. x and y may
// be the same array.
double exp_shift_sum(const float* x, float* y, int64_t n, float shift);

// Dot product of one weight row (any supported type) with an f32 vector.
float dot(DType wt, const void* w, const float* x, int64_t n);

// Attention over an f16 KV cache: f32 products summed in f64 (as ggml's f16 dot products do).
float dot_f16_acc64(const uint16_t* k, const float* q, int64_t n);
void axpy_f16_acc64(double* acc, float p, const uint16_t* v, int64_t n);
// acc_i += p · v_i in f64 (the product exact): value rows widened from a quantised cache
void axpy_f32_acc64(double* acc, float p, const float* v, int64_t n);

}  // namespace llmforge::kernels
