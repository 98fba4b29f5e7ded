// llmforge convert IN OUT: between GGUF, llama2.c .bin and safetensors (+ config.json).
#include <cstdio>

#include "cli/common.h"
#include "formats/formats.h"
#include "llmforge/error.h"

namespace llmforge::cli {

void add_convert(CLI::App& app) {
    auto* cmd = app.add_subcommand("convert", "Convert a model between GGUF, llama2.c .bin and safetensors");
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto dtype = std::make_shared<std::string>();
    auto tokenizer = std::make_shared<std::string>();
    cmd->add_option("input", *in, "source model")->required();
    cmd->add_option("output", *out, "destination: *.gguf, *.bin (llama2.c), or a directory / *.safetensors")->required();
    cmd->add_option("--dtype", *dtype, "convert matrices to f32, f16 or bf16 (default: keep)")->default_str("keep each tensor's");
    cmd->add_option("--tokenizer", *tokenizer, "llama2.c tokenizer.bin for a .bin input")->default_str("the model's own");
    cmd->callback([=] {
        DType t = DType::Unknown;
        if (!dtype->empty()) {
            t = dtype_from_name(*dtype);
            if (t == DType::Unknown) throw_bad_input("convert: --dtype must be f32, f16 or bf16, not '%s'", dtype->c_str());
        }
        Model m = load_for_cli(*in, *tokenizer, false, true, Repack::None);  // row-major, as the files hold them
        if (format_for_output(*out) == FileFormat::Llama2c && t != DType::Unknown && t != DType::F32)
            throw_bad_input("convert: llama2.c files hold f32 weights only");
        save_model(m, *out, t);
        const FileFormat f = format_for_output(*out);
        std::string also;
        if (f == FileFormat::Llama2c && m.vocab) also = " and its tokenizer " + formats::llama2c_tokenizer_path(*out);
        if (f == FileFormat::Safetensors && out->size() > 12 && out->compare(out->size() - 12, 12, ".safetensors") == 0)
            also = std::string(" and, beside it, config.json") + (m.vocab ? ", tokenizer.json, tokenizer_config.json" : "");
        std::fprintf(stderr, "llmforge: wrote %s%s\n", out->c_str(), also.c_str());
        if (!m.vocab) std::fprintf(stderr, "llmforge: note: the source has no tokenizer, so neither has %s (--tokenizer FILE attaches one)\n", out->c_str());
    });
}

}  // namespace llmforge::cli
