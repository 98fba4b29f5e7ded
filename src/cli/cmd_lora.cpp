// llmforge lora merge -m BASE --lora ADAPTER -o OUT [--lora-scale S] [--dtype T]: W' = W + S · (alpha/rank) · B A, written as
// a plain model. llmforge lora info ADAPTER: what an adapter adapts.
#include <cstdio>

#include "cli/common.h"
#include "core/kernels.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"

namespace llmforge::cli {

void apply_lora_adapters(Transformer& tf, const Model& m, const std::vector<std::string>& files, float scale) {
    for (const std::string& f : files) {
        const Model a = load_lora_adapter(f, m.config);
        tf.add_lora(a, scale);  // copies the adapter
        std::fprintf(stderr, "llmforge: LoRA adapter %s (%zu tensors, scale %g)\n", f.c_str(), a.tensors.size(), static_cast<double>(scale));
    }
}

void add_lora(CLI::App& app) {
    auto* cmd = app.add_subcommand("lora", "LoRA adapters: merge into a model, or describe");
    cmd->require_subcommand(1);
    struct Opts {
        std::string model, lora, out, dtype;
        float scale = 1.0f;
    };
    auto o = std::make_shared<Opts>();
    auto* merge = cmd->add_subcommand("merge", "Merge an adapter into its base model: W + scale · (alpha/rank) · B A");
    merge->add_option("-m,--model", o->model, "base model")->required();
    merge->add_option("--lora", o->lora, "adapter (GGUF)")->required();
    merge->add_option("-o,--output", o->out, "merged model (.gguf, .bin, or a safetensors directory)")->required();
    merge->add_option("--lora-scale", o->scale, "adapter scale");
    merge->add_option("--dtype", o->dtype, "f32, f16 or bf16 (default: the base model's; f16 for the adapted matrices of a quantised base, as llama-export-lora)")->default_str("the base model's");
    merge->callback([o] {
        Model base = load_model(o->model);
        const Model a = load_lora_adapter(o->lora, base.config);
        const DType dt = o->dtype.empty() ? DType::Unknown : dtype_from_name(o->dtype);
        if (!o->dtype.empty() && dt != DType::F32 && dt != DType::F16 && dt != DType::BF16) throw_bad_input("--dtype must be f32, f16 or bf16");
        const Model merged = merge_lora(base, a, o->scale, dt);
        save_model(merged, o->out, dt);
        std::printf("merged %s into %s → %s\n", o->lora.c_str(), o->model.c_str(), o->out.c_str());
    });
    auto file = std::make_shared<std::string>();
    auto* info = cmd->add_subcommand("info", "Describe a LoRA adapter");
    info->add_option("file", *file, "adapter (GGUF)")->required();
    info->callback([file] {
        const gguf::File f = gguf::read(*file);
        if (f.meta.get_string("general.type", "") != "adapter") throw_bad_input("'%s' is not an adapter (general.type)", file->c_str());
        std::printf("architecture  %s\nalpha         %g\n", f.meta.get_string("general.architecture", "?").c_str(), f.meta.get_float("adapter.lora.alpha", 0));
        size_t params = 0;
        for (const Tensor& t : f.tensors) {
            params += static_cast<size_t>(t.numel());
            std::printf("%-40s [%lld, %lld] %s\n", t.name.c_str(), static_cast<long long>(t.shape[0]), static_cast<long long>(t.shape.size() > 1 ? t.shape[1] : 1),
                        dtype_name(t.dtype));
        }
        std::printf("parameters    %zu\n", params);
    });
}

}  // namespace llmforge::cli
