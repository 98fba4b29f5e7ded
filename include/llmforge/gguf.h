// GGUF v2/v3: the model file format of llama.cpp (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, metadata key/values,
// tensor infos (name, dims innermost-first, type, offset), padding to `general.alignment`, tensor data.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmforge/gguf_metadata.h"
#include "llmforge/tensor.h"

namespace llmforge {
class MappedFile;
class AtomicWriter;
}  // namespace llmforge

namespace llmforge::gguf {

struct File {
    uint32_t version = 3;
    uint64_t alignment = 32;
    Metadata meta;
    std::vector<Tensor> tensors;  // data points into `mapping`
    std::shared_ptr<MappedFile> mapping;
};

// Reads the header and tensor table and checks every tensor lies inside the file. Tensor data stays mapped.
// Throws a bad-input Error naming the problem for any malformed or truncated file.
File read(const std::string& path, bool use_mmap = true);
bool has_magic(const std::string& path);

// Writes a GGUF v3 file atomically. Tensors must be f32/f16/bf16 (or carry a known block type).
void write(const std::string& path, const Metadata& meta, const std::vector<Tensor>& tensors, uint64_t alignment = 32);
// The same, with tensor data produced one tensor at a time: write_data(i, out) must write exactly tensors[i].nbytes()
// bytes (tensors[i].data is not read). Lets a model larger than memory be written.
void write_streaming(const std::string& path, const Metadata& meta, const std::vector<Tensor>& tensors,
                     const std::function<void(size_t, AtomicWriter&)>& write_data, uint64_t alignment = 32);

}  // namespace llmforge::gguf
