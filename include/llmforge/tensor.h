// A named view of weight data: type, row-major shape (outermost first) and a pointer to the bytes.
// The bytes belong to the model that holds the view (a memory-mapped file or an owned buffer).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llmforge/dtype.h"

namespace llmforge {

struct Tensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // row-major, e.g. a linear layer's weight is [out_features, in_features]
    const void* data = nullptr;
    // Rows: row-major, as in the file. Panels: an f32 matrix reordered in memory by kernels::pack_panels for the CPU
    // GEMM. Interleaved8: a quantised matrix whose rows are interleaved by eight for the CPU's integer kernels (Q4_0,
    // as llama.cpp repacks it). Both are made by repack_for_cpu; only the matrix products read them, and nothing writes
    // such a tensor to a file.
    enum class Layout : uint8_t { Rows, Panels, Interleaved8 };
    Layout layout = Layout::Rows;

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
    size_t nbytes() const;  // for block-quantised types: the GGUF block size arithmetic
    int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
    int64_t rows() const { return cols() ? numel() / cols() : 0; }
    std::string shape_str() const;
};

// Bytes taken by n elements of type t laid out as rows of `cols` (block types: whole blocks per row).
// Returns 0 for types whose layout llmforge does not know.
size_t dtype_row_bytes(DType t, int64_t cols);
int64_t dtype_block_size(DType t);

}  // namespace llmforge
