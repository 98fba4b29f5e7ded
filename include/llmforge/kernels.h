// CPU compute kernels. Weights are row-major [rows, cols] in f32, f16 or bf16; activations are f32.
//  - matvec: one activation vector (decoding). Memory-bound: our own SIMD kernels, AVX-512 or AVX2 chosen at run time.
//  - matmul: many activation rows (prompt processing). Compute-bound: our cache-blocked GEMM (it measured
//    2x faster than Debian's OpenBLAS sgemm here, see BENCHMARKS.md), f16/bf16 widened per packed panel.
#pragma once
#include <cstdint>

#include "llmforge/dtype.h"
#include "llmforge/threadpool.h"

namespace llmforge::kernels {

// Name of the instruction set the kernels use on this CPU: "avx512", "avx2" or "scalar".
const char* isa_name();
// Force a given ISA ("avx512", "avx2", "scalar"); returns false if the CPU lacks it. For tests.
bool set_isa(const char* name);

// y[r] = sum_c W[r, c] * x[c]   for r in [0, rows)
void matvec(DType wt, const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool);

// Y[i, r] = sum_c X[i, c] * W[r, c]   for i in [0, n), r in [0, rows)        (Y = X · Wᵀ)
void matmul(DType wt, const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool);

// Dot product of one weight row (any supported type) with an f32 vector.
float dot(DType wt, const void* w, const float* x, int64_t n);

// Attention over an f16 KV cache: f32 products summed in f64 (as ggml's f16 dot products do).
float dot_f16_acc64(const uint16_t* k, const float* q, int64_t n);
void axpy_f16_acc64(double* acc, float p, const uint16_t* v, int64_t n);

}  // namespace llmforge::kernels
