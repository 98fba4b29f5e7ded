// Internal: readers and writers of the model file formats, all producing/consuming a Model.
#pragma once
#include <functional>
#include <string>

#include "llmforge/model.h"

namespace llmforge::formats {

Model load_gguf(const std::string& path, const LoadOptions& opts);
void save_gguf(const Model& m, const std::string& path, DType dtype);
// What save_gguf writes: the metadata and the tensors (converted copies held by tmp), in the file's order.
std::vector<Tensor> gguf_image(const Model& m, DType dtype, gguf::Metadata& meta, Model& tmp);

Model load_llama2c(const std::string& path, const LoadOptions& opts);
void save_llama2c(const Model& m, const std::string& path);
// Where save_llama2c writes the tokenizer of NAME.bin: NAME.tokenizer.bin (load_llama2c looks there first).
std::string llama2c_tokenizer_path(const std::string& model_path);

Model load_safetensors(const std::string& path, const LoadOptions& opts);
void save_safetensors(const Model& m, const std::string& path, DType dtype);

// Rows of Wq/Wk reordered between RoPE pairings (see RopeStyle). `to_half`: Interleaved → Half, else back.
std::vector<uint8_t> permute_rope_rows(const Tensor& t, int64_t n_heads, bool to_half);
// A tensor's bytes converted to another plain type (f32/f16/bf16).
std::vector<uint8_t> convert_bytes(const Tensor& t, DType to);
// The type a tensor is written in when the file's weights are `requested` (f16, bf16, f32): norms and biases (1-D) and
// BERT's segment embedding (token_types.weight, which llama.cpp adds to f32 activations directly) stay f32, as
// llama.cpp's converter writes them.
DType stored_type(const std::string& name, const std::vector<int64_t>& shape, DType requested);
// Transposed copy of a 2-D tensor.
std::vector<uint8_t> transpose_bytes(const Tensor& t);

}  // namespace llmforge::formats
