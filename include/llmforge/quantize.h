// Quantising a model: ggml's block types (Q4_0 … Q8_0, the K-quants Q2_K … Q6_K), chosen per tensor as llama-quantize
// chooses them, with or without an importance matrix.
//
// A quantisation "type" is one of llama-quantize's names (its llama_ftype): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
// Q2_K_S, Q3_K_S, Q3_K_M (alias Q3_K), Q3_K_L, Q4_K_S, Q4_K_M (Q4_K), Q5_K_S, Q5_K_M (Q5_K), Q6_K, F16, BF16, F32.
// Each names a default type for the weight matrices and, for the mixes, rules that give some tensors more bits:
// the output matrix (Q6_K), attn_v and ffn_down in the first and last eighth of the layers and every third between
// (Q4_K_M, Q5_K_M: Q6_K), and so on — the rules of llama.cpp's llama_tensor_get_type (src/llama-quant.cpp), so that
// the same input gives the same file. Norms, biases and position embeddings keep their type.
//
// The importance matrix (llama-imatrix's file: per weight matrix, the mean over the calibration tokens of each input
// column's squared activation) weights each column's error in the quantisers' searches.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "llmforge/dtype.h"

namespace llmforge {

// An importance matrix: per tensor name, one value per input column (Σ x² over the calibration tokens and the count
// of tokens summed, as llama-imatrix stores them; importance() = sums / count).
struct ImportanceMatrix {
    struct Entry {
        std::vector<float> sums;
        int32_t ncall = 0;  // llama-imatrix's "ncall": chunks (of its batches) accumulated
    };
    std::map<std::string, Entry> entries;
    int32_t chunks = 0;      // calibration chunks processed
    std::string dataset;     // the calibration text's file name
    // The weights the quantisers use: sums / ncall (llama-quantize divides so when it loads a file).
    std::vector<float> importance(const std::string& tensor) const;
};
// llama-imatrix's binary file (int32 n_entries; per entry: int32 name length, name, int32 ncall, int32 n, n × f32
// sums; then int32 chunks, int32 dataset length, dataset). Throws a bad-input Error for a malformed file.
ImportanceMatrix read_imatrix(const std::string& path);
void write_imatrix(const ImportanceMatrix& m, const std::string& path);  // atomically

// The quantisation types by name (case-insensitive; the aliases Q3_K, Q4_K, Q5_K included), and each one's llama_ftype
// number (GGUF general.file_type) and default tensor type.
struct QuantMix {
    std::string name;
    uint32_t ftype;
    DType type;
};
const std::vector<QuantMix>& quant_mixes();
const QuantMix* find_quant_mix(const std::string& name);

struct QuantizeOptions {
    std::string type;                         // a quant_mixes() name
    std::string imatrix;                      // path of an importance matrix, or empty
    DType output_type = DType::Unknown;       // --output-type: output.weight's type instead of the rule's
    DType token_embedding_type = DType::Unknown;  // --token-embedding-type
    bool pure = false;                        // every matrix the default type (no mix rules)
    bool allow_requantize = false;            // accept already-quantised input tensors (dequantised first)
    int threads = 0;                          // 0: ThreadPool::default_threads()
    bool progress = true;                     // a progress line on the log sink
};

struct QuantizeReport {
    struct TensorInfo {
        std::string name;
        std::vector<int64_t> shape;
        DType from, to;
        size_t bytes_in, bytes_out;
        bool used_imatrix;
    };
    std::vector<TensorInfo> tensors;
    std::string ftype;
    size_t bytes_in = 0, bytes_out = 0;  // tensor data
    int64_t n_params = 0;                // elements of all tensors
    double bpw_in() const { return n_params ? 8.0 * static_cast<double>(bytes_in) / static_cast<double>(n_params) : 0; }
    double bpw_out() const { return n_params ? 8.0 * static_cast<double>(bytes_out) / static_cast<double>(n_params) : 0; }
};

// Quantises the model at `in` (a GGUF, or a safetensors file/directory with config.json, in f32, f16 or bf16) into a
// GGUF at `out` (written atomically). GGUF input keeps every metadata key and the tensor order llama-quantize writes.
// Throws a bad-input Error for an unknown type, a tensor whose rows do not split into the type's blocks where no
// fallback exists, a quantised input without allow_requantize, or an importance matrix that does not fit the model.
QuantizeReport quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& opts);

}  // namespace llmforge
