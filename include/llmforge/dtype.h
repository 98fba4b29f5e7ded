// Element types of tensors and the conversions between them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace llmforge {

// The numeric values are GGML's type ids, so a GGUF tensor type maps onto DType directly.
enum class DType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,  // ggml's type ids
    Unknown = 0xffffffff,
};

const char* dtype_name(DType t);                 // "f32", "f16", "q4_0", ... ("type#N" if unknown)
DType dtype_from_name(const std::string& name);  // inverse of dtype_name for f32/f16/bf16; Unknown otherwise
bool dtype_supported(DType t);                   // types the compute kernels handle: f32, f16, bf16 and ggml's Q4_0…Q8_0, Q2_K…Q6_K
size_t dtype_size(DType t);                      // bytes per element for the plain types, 0 for block types

// ---- scalar conversions (exact, round-to-nearest-even where rounding is needed) ------
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Bulk conversions (vectorised where the CPU allows).
void convert_f16_to_f32(const uint16_t* src, float* dst, size_t n);
void convert_bf16_to_f32(const uint16_t* src, float* dst, size_t n);
void convert_f32_to_f16(const float* src, uint16_t* dst, size_t n);
void convert_f32_to_bf16(const float* src, uint16_t* dst, size_t n);
// Convert n elements of any supported type to f32.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);
void convert_from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace llmforge
