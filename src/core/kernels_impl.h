// Internal: the table of per-ISA kernel entry points.
#pragma once
#include <cstdint>

namespace llmforge::kernels {

struct KernelTable {
    const char* name;
    // Dot products of one weight row with x.
    float (*dot_f32)(const float* w, const float* x, int64_t n);
    float (*dot_f16)(const uint16_t* w, const float* x, int64_t n);
    float (*dot_bf16)(const uint16_t* w, const float* x, int64_t n);
    void (*cvt_f16)(const uint16_t* src, float* dst, int64_t n);
    void (*cvt_bf16)(const uint16_t* src, float* dst, int64_t n);
    // Attention over an f16 KV cache, as ggml computes it: f32 products, f64 sums.
    float (*dot_f16_acc64)(const uint16_t* k, const float* q, int64_t n);     // Σ (f32)(k_i · q_i)
    void (*axpy_f16_acc64)(double* acc, float p, const uint16_t* v, int64_t n); // acc_i += (f32)(p · v_i)
    void (*axpy_f32_acc64)(double* acc, float p, const float* v, int64_t n);    // acc_i += p · v_i, exact in f64
    // Single-accumulator dot products (see dot_row_seq) and the vector width they use.
    float (*dot_seq_f32)(const float* w, const float* x, int64_t n);
    float (*dot_seq_f16)(const uint16_t* w, const float* x, int64_t n);
    float (*dot_seq_bf16)(const uint16_t* w, const float* x, int64_t n);
    int vec_width;
    // Y[i, r] = Σ_k X[i, k] W[r, k] for weight rows [r0, r1) (Y has `rows` columns, X and W have K).
    void (*gemm_f32)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*gemm_f16)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*gemm_bf16)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    // The same product summed as llamafile's tinyBLAS sums it (one 16-lane FMA accumulator per output, K % 16 == 0,
    // rows r0..r1 in groups of 4); nullptr where the vector width is not 16 (callers emulate it in scalar code).
    void (*gemm_tinyblas_f32)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*gemm_tinyblas_f16)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    // ggml's softmax exps (v_expf on blocks of 16, returns Σ as ggml sums it), SiLU (v_silu), and rounding to f16 and
    // back; nullptr where the vector width is not 16 (callers use core/ggml_math.h's scalar forms).
    double (*softmax_exp_ggml)(float* y, const float* x, int64_t n, float max);
    void (*silu_ggml)(float* y, const float* x, int64_t n);
    void (*round_f16)(float* x, int64_t n);
    // RoPE on n tokens × n_heads heads of hd values: pairs (2j, 2j+1) if interleaved, else (j, j + half), rotated by
    // cos/sin[token][j] as x0·cos − x1·sin, x0·sin + x1·cos with the x0 products fused (ggml's compiled loop).
    void (*rope)(float* x, int64_t n, int64_t n_heads, int64_t hd, int64_t half, bool interleaved, const float* cos, const float* sin);
    void (*tanh)(const float* x, float* y, int64_t n);
    double (*exp_shift_sum)(const float* x, float* y, int64_t n, float shift);
    // f16 weights · f16 activations in dot_f16's order (= dot_f16 with x rounded to f16), and f32 → f16 rounding.
    float (*dot_f16_f16)(const uint16_t* w, const uint16_t* x, int64_t n);
    void (*to_f16)(const float* x, uint16_t* y, int64_t n);
    // Y[i, r] = dot_seq_*(W[r], X[i]) for rows [r0, r1), bit for bit, in register tiles (batch-invariant decoding).
    void (*gemm_seq_f32)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*gemm_seq_f16)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*gemm_seq_bf16)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    // Panel-layout f32 weights (kernels::matmul_panels): the GEMM (n > 4) or the few-vector form (n ≤ 4), weight rows [r0, r1)
    // (multiples of 32); nullptr where only the portable form exists.
    void (*gemm_panels_f32)(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*matvec_panels_f32)(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    // The same for f16 panels (kernels::pack_panels_f16), each value widened exactly: the f32 panels' order.
    void (*gemm_panels_f16)(const uint16_t* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    void (*matvec_panels_f16)(const uint16_t* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    // y[r] = dot_f32(W[r], x) and dot_f16_f16(W[r], xh) for rows [r0, r1) of a row-major matrix, bit for bit, several
    // rows read side by side (decoding).
    void (*rows_f32)(const float* W, const float* x, float* y, int64_t K, int64_t r0, int64_t r1);
    void (*rows_f16_f16)(const uint16_t* W, const uint16_t* xh, float* y, int64_t K, int64_t r0, int64_t r1);
};

const KernelTable* table_avx512();
const KernelTable* table_avx2();
const KernelTable* table_scalar();
const KernelTable& active();

}  // namespace llmforge::kernels
