// Internal: ggml's quantised block formats — their layouts, their dequantisation and their reference quantisers.
//
// Every type stores a row as blocks: a block of 32 values (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) or a super-block of 256
// (the K-quants Q2_K…Q6_K, and Q8_K, the activations' type for K-quant products); IQ4_NL (32) and IQ4_XS (256) store
// indices into 16 non-linear levels. The layouts are ggml's
// (ggml-common.h), byte for byte, so a GGUF tensor's data is used as it lies in the file.
//
// Quantisation follows ggml's quantisers value for value: without importance weights, the reference quantisers that
// llama-quantize uses (quantize_row_*_ref); with an importance matrix (one weight per column, from `llmforge imatrix` or
// llama-imatrix), the importance-weighted searches of quantize_<type>(…, quant_weights). Their results are pinned by
// tests against ggml's own library, so every floating-point expression here keeps ggml's order of operations (the file
// is compiled with -ffp-contract=off: a fused multiply-add would round differently).
#pragma once
#include <cstddef>
#include <cstdint>

#include "llmforge/dtype.h"

namespace llmforge::quant {

constexpr int kBlock = 32;    // QK4_0 … QK8_0
constexpr int kSuper = 256;   // QK_K

#pragma pack(push, 1)
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };                         // x = d·(q − 8)
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };                      // x = d·q + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };          // x = d·(q − 16), q's 5th bits in qh
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };       // x = d·q + m
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };                          // x = d·q
struct BlockQ8_1 { uint16_t d, s; int8_t qs[32]; };                       // x = d·q; s = d·Σq
// K-quants: 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 8 of 32 (Q4_K, Q5_K) with quantised scales (and mins)
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };          // 4-bit scale | 4-bit min
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };  // 6-bit signed scales
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };          // 6-bit scales and mins
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };  // 8-bit signed scales
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };                       // bsums: Σ of each 16
// non-linear 4-bit: x = d·v[q] with ggml's 16 levels v (kvalues_iq4nl); IQ4_XS: 8 sub-blocks of 32 with 6-bit scales
struct BlockIQ4_NL { uint16_t d; uint8_t qs[16]; };
// ggml's 16 levels (kvalues_iq4nl)
inline constexpr int8_t kIq4NlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
struct BlockIQ4_XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
#pragma pack(pop)
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 &&
              sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 &&
              sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292 && sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// Whether t is one of the block types here, its values per block and bytes per block.
bool is_quantized(DType t);
int64_t block_elems(DType t);
size_t block_bytes(DType t);
// Bytes of a row of n values (n a multiple of block_elems(t)).
inline size_t row_bytes(DType t, int64_t n) { return static_cast<size_t>(n / block_elems(t)) * block_bytes(t); }

// n values (a multiple of block_elems(t)) of type t to f32: ggml's dequantize_row_<type>.
void dequantize(DType t, const void* src, float* dst, int64_t n);

// `rows` rows of n_per_row values into t: ggml's quantize_<type>(src, dst, rows, n_per_row, importance). importance is
// null (the reference quantiser) or n_per_row weights, one per column. Returns the bytes written.
size_t quantize(DType t, const float* src, void* dst, int64_t rows, int64_t n_per_row, const float* importance = nullptr);

// The reference quantiser of the activations' types (quantize_row_q8_0_ref / _q8_K_ref): n values into blocks.
void quantize_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
void quantize_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n);

// ---- products with quantised activations (ggml's vec_dot: the activations are quantised per block, then each block's
// integer dot product is scaled) ----

// The activations' type a weight type is multiplied with (ggml's vec_dot_type): Q8_0 for Q4_0, Q5_0 and Q8_0, Q8_1 for
// Q4_1 and Q5_1 (their blocks carry d·Σq for the weights' offsets), Q8_K for the K-quants; IQ4_NL: Q8_0, IQ4_XS: Q8_K.
DType activation_type(DType weights);
// n activations into that type as ggml's x86 CPU backend quantises them (quantize_row_q8_0 / _q8_1: amax/127, values
// rounded to nearest even; Q8_K: the reference quantiser).
void quantize_activations(DType act, const float* x, void* y, int64_t n);
// Σ_i w_i · x_i over n values: one weight row of type `weights` with one row quantised by quantize_activations.
float vec_dot(DType weights, const void* w, const void* x, int64_t n);
// Q4_0 in the order of ggml's repacked q4_0_8x8 kernels, which llama.cpp's CPU backend uses instead of vec_dot on AVX2
// machines for matrices whose row count is a multiple of 8: one FMA chain over the blocks per output,
// acc = fma((float) Σ_block q·x, d_w·d_x, acc) from 0 (the integer sum exact in any order).
float vec_dot_q4_0_chain(const void* w, const void* x, int64_t n);
// Whether a Q4_0 matrix of `rows` rows takes that order (llama.cpp repacks it: rows % 8 == 0).
inline bool q4_0_chain_order(DType t, int64_t rows) { return t == DType::Q4_0 && rows % 8 == 0; }

// Q4_0 interleaved by eight rows (Tensor::Layout::Interleaved8, made at load by repack_for_cpu for the SIMD kernels):
// for each group of eight rows and each block b, one group block of 144 bytes — the eight rows' f16 scales, then four
// chunks of 32 bytes, chunk c holding bytes 4c … 4c+3 of each row's 16 nibble bytes (row r at offset 4r). The same
// bytes as the rows, reordered (rows % 8 == 0).
constexpr size_t kQ4_0GroupBlockBytes = 8 * sizeof(BlockQ4_0);
void interleave_q4_0(const void* src, void* dst, int64_t rows, int64_t cols);
void deinterleave_q4_0(const void* src, void* dst, int64_t rows, int64_t cols);

// The 6-bit scale and min j (0…7) of a Q4_K / Q5_K super-block's 12 packed bytes.
inline void k4_scale_min(int j, const uint8_t* s, uint8_t& scale, uint8_t& min) {
    if (j < 4) {
        scale = s[j] & 63;
        min = s[j + 4] & 63;
    } else {
        scale = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        min = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}
// The 16 signed 6-bit scales of a Q3_K super-block (−32…31).
void q3k_scales(const uint8_t packed[12], int8_t out[16]);

}  // namespace llmforge::quant
