// Tensors and the byte layout of every ggml type (see tensor.h).
#include "llmforge/tensor.h"

#include <string>

namespace llmforge {

int64_t dtype_block_size(DType t) {
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q8_1: return 32;
        case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::Q8_K: return 256;
        case DType::IQ4_NL: return 32;
        case DType::IQ2_XXS: case DType::IQ2_XS: case DType::IQ3_XXS: case DType::IQ1_S: case DType::IQ3_S: case DType::IQ2_S:
        case DType::IQ4_XS: case DType::IQ1_M: case DType::TQ1_0: case DType::TQ2_0: return 256;
        default: return 1;
    }
}

// Bytes per block, from ggml's type traits.
static size_t block_bytes(DType t) {
    switch (t) {
        case DType::F32: case DType::I32: return 4;
        case DType::F16: case DType::BF16: case DType::I16: return 2;
        case DType::I8: return 1;
        case DType::I64: case DType::F64: return 8;
        case DType::Q4_0: return 18;
        case DType::Q4_1: return 20;
        case DType::Q5_0: return 22;
        case DType::Q5_1: return 24;
        case DType::Q8_0: return 34;
        case DType::Q8_1: return 36;
        case DType::Q2_K: return 84;
        case DType::Q3_K: return 110;
        case DType::Q4_K: return 144;
        case DType::Q5_K: return 176;
        case DType::Q6_K: return 210;
        case DType::Q8_K: return 292;
        // the i-quants and ternary types (ggml-common.h's static_asserts, QK_K = 256)
        case DType::IQ2_XXS: return 66;
        case DType::IQ2_XS: return 74;
        case DType::IQ3_XXS: return 98;
        case DType::IQ1_S: return 50;
        case DType::IQ4_NL: return 18;
        case DType::IQ3_S: return 110;
        case DType::IQ2_S: return 82;
        case DType::IQ4_XS: return 136;
        case DType::IQ1_M: return 56;
        case DType::TQ1_0: return 54;
        case DType::TQ2_0: return 66;
        default: return 0;
    }
}

size_t dtype_row_bytes(DType t, int64_t cols) {
    const size_t bb = block_bytes(t);
    const int64_t bs = dtype_block_size(t);
    if (bb == 0 || cols % bs != 0) return 0;
    return static_cast<size_t>(cols / bs) * bb;
}

size_t Tensor::nbytes() const { return dtype_row_bytes(dtype, cols()) * static_cast<size_t>(rows()); }

std::string Tensor::shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace llmforge
