// Internal: the weight types the CPU kernels compute with, and what each one is to them.
//
// Adding a weight type (the quantised types of the next issue) is one registration here plus its kernels: a class
// deriving WeightType, in weight_types.cpp, that says how a row is laid out (elements and bytes per block), how it
// converts to and from f32, and which kernels of the active instruction set (kernels_impl.h's KernelTable: AVX-512,
// AVX2 or portable) compute its products — one row with a vector, a matrix with a vector (decoding), several rows in
// one fixed order (batch-invariant serving), many rows (the packed GEMM of prompt processing) and llama.cpp's order
// (ggml arithmetic). Everything else that touches weights — the backend's linear layers and embedding rows, the
// conversions, loading and writing files — asks these traits instead of computing dtype_size(t) × cols or switching
// on the type.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/threadpool.h"
#include "llmforge/dtype.h"

namespace llmforge {

class WeightType {
public:
    virtual ~WeightType() = default;
    virtual DType type() const = 0;
    // A row is cols / block_elems() blocks of block_bytes() bytes (plain types: blocks of one element).
    virtual int64_t block_elems() const { return 1; }
    virtual size_t block_bytes() const = 0;
    size_t row_bytes(int64_t cols) const { return static_cast<size_t>(cols / block_elems()) * block_bytes(); }
    // The alignment its data needs in memory (a mapped file's tensor is used in place only if it has it).
    virtual size_t alignment() const { return block_bytes(); }
    // Row r of a row-major matrix of `cols` columns starting at base.
    const void* row(const void* base, int64_t r, int64_t cols) const {
        return static_cast<const uint8_t*>(base) + static_cast<size_t>(r) * row_bytes(cols);
    }
    // n elements (a multiple of block_elems()) to f32 and back (from_f32 rounds to nearest even where it rounds).
    virtual void to_f32(const void* src, float* dst, int64_t n) const = 0;
    virtual void from_f32(const float* src, void* dst, int64_t n) const = 0;

    // The products, Y = X · Wᵀ for W [rows, cols] of this type and f32 activations X [n, cols]:
    // one row · x (n = cols), the active instruction set's fastest order
    virtual float dot(const void* w, const float* x, int64_t n) const = 0;
    // y = W x (decoding)
    virtual void matvec(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const;
    // every output summed in one fixed order whatever n is (batch-invariant)
    virtual void matmul_rowwise(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const = 0;
    // the fastest form for n rows: matvec, the row-wise tiles up to seq_max_rows(), then the packed GEMM
    void matmul(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const;
    // llama.cpp's summation order (the default: matmul, for types whose digits are not pinned)
    virtual void matmul_ggml(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const {
        matmul(W, X, Y, n, rows, cols, pool);
    }

    // Tensor::Layout::Interleaved8: whether a [rows, cols] matrix of this type has a faster form with its rows
    // interleaved by eight on this CPU (so far Q4_0 with AVX2: llama.cpp's repacking, see quants.h), the reordering
    // (src row-major, dst as large), and the product on that form — bit for bit matmul_ggml's outputs for every n
    // (so also batch-invariant).
    virtual bool interleavable(int64_t /*rows*/, int64_t /*cols*/) const { return false; }
    virtual void interleave(const void* src, void* dst, int64_t rows, int64_t cols) const;
    virtual void matmul_interleaved(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t cols, ThreadPool& pool) const;

    // Block types: y[r] = W[r] · xq for `rows` rows `stride` bytes apart, xq one row of `cols` values already quantised
    // to the type's activation type (quant::quantize_activations) — a quantised KV cache's keys against one query
    // head. The calling thread only; the active instruction set's block products (throws for plain types).
    virtual void dot_quantized_rows(const void* W, size_t stride, const void* xq, float* y, int64_t rows, int64_t cols) const;

protected:
    using GemmFn = void (*)(const void* W, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1);
    // the packed GEMM of the active instruction set for this type, and up to how many rows the row-wise tiles beat it
    virtual GemmFn gemm() const = 0;
    virtual int64_t seq_max_rows() const = 0;
    // matvec's default: each thread one contiguous range of rows, one dot() each
    void matvec_by_rows(const void* W, const float* x, float* y, int64_t rows, int64_t cols, ThreadPool& pool) const;
};

// The traits of a type, or null where the CPU kernels do not compute with it.
const WeightType* find_weight_type(DType t);
// The same, throwing a runtime Error that names the type and `what` needed it.
const WeightType& weight_type(DType t, const char* what);

}  // namespace llmforge
