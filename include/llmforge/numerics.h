// How the forward pass rounds: a value fixed when a model is set up to run (a Transformer, the serving engine).
#pragma once

namespace llmforge {

enum class Numerics {
    // The fastest kernels of this CPU: cache-blocked products, vectorised attention.
    Fast,
    // Every row's results bit for bit those it gets alone: they depend neither on which other sequences share a step
    // nor on how a prompt is cut into chunks (serving: continuous batching).
    BatchInvariant,
    // Every intermediate rounded exactly as llama.cpp's CPU backend rounds it (its summation orders, its vectorised
    // exp, the cache padded to 32 cells; see core/ggml_math.h), so that results agree with llama.cpp's to the last bit
    // on f32 weights — llama-perplexity's numbers to the digit. Slower.
    Ggml,
};

const char* numerics_name(Numerics n);  // "fast", "batch-invariant", "ggml"

}  // namespace llmforge
