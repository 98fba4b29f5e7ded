// Hugging Face safetensors (https://huggingface.co/docs/safetensors): u64 header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the tensor bytes.
// A model is a directory (or one .safetensors file) with config.json beside it; tensors carry Hugging Face names.
#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include "core/json_int.h"
#include "core/mmap_file.h"
#include "core/weight_types.h"
#include "formats/formats.h"
#include "llmforge/bpe.h"
#include "core/quants.h"
#include "llmforge/error.h"
#include "model/family.h"

using json = nlohmann::json;

namespace llmforge::formats {

namespace {

std::string dir_of(const std::string& p) {
    if (is_directory(p)) return p;
    const size_t s = p.rfind('/');
    return s == std::string::npos ? "." : p.substr(0, s);
}

DType st_dtype(const std::string& s) {
    if (s == "F32") return DType::F32;
    if (s == "F16") return DType::F16;
    if (s == "BF16") return DType::BF16;
    return DType::Unknown;
}
const char* st_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        default: return nullptr;
    }
}

ModelConfig config_from_hf_fields(const json& j, const std::string& path);
// A config.json's fields; a field of the wrong JSON type is bad input naming the file (nlohmann's type errors do not
// escape: found by fuzz_safetensors).
ModelConfig config_from_hf(const json& j, const std::string& path) {
    try {
        return config_from_hf_fields(j, path);
    } catch (const json::exception& e) {
        throw_bad_input("'%s': config.json: %s", path.c_str(), e.what());
    }
}
ModelConfig config_from_hf_fields(const json& j, const std::string& path) {
    std::string type = j.value("model_type", "");
    if (type.empty() && j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
        j["architectures"][0].is_string())
        type = j["architectures"][0].get<std::string>();
    const arch::Family* f = arch::family_for_hf_type(type);
    if (!f) {
        std::string known;
        for (const std::string& n : family_names()) known += (known.empty() ? "" : ", ") + n;
        throw_bad_input("'%s': unknown architecture '%s' in config.json (supported: %s)", path.c_str(), type.c_str(), known.c_str());
    }
    ModelConfig c = f->describe();
    arch::HfConfig hf(j, path);
    f->from_hf(hf, c);
    hf.check_unread(c);
    c.name = j.value("_name_or_path", type);
    return c;
}

json config_to_hf(const ModelConfig& c) { return arch::family(c.arch).to_hf(c); }

// The tensor's values plus `add`, as f32 bytes.
std::vector<uint8_t> plus_f32(const Tensor& t, float add) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    convert_to_f32(t.dtype, t.data, v.data(), v.size());
    for (float& x : v) x += add;
    std::vector<uint8_t> bytes(v.size() * sizeof(float));
    std::memcpy(bytes.data(), v.data(), bytes.size());
    return bytes;
}

// Reads one .safetensors file into the model (tensors stay mapped unless they need a transpose).
void read_file(Model& m, const std::string& file, bool use_mmap) {
    auto f = MappedFile::open(file, use_mmap);
    if (f->size() < 8) throw_bad_input("'%s' is truncated: no safetensors header", file.c_str());
    uint64_t hlen;
    std::memcpy(&hlen, f->data(), 8);
    if (hlen > f->size() - 8 || hlen > (uint64_t(100) << 20))
        throw_bad_input("'%s' is truncated or not a safetensors file (header of %llu bytes)", file.c_str(), static_cast<unsigned long long>(hlen));
    json h;
    try {
        h = json::parse(f->data() + 8, f->data() + 8 + hlen);
    } catch (const std::exception& e) {
        throw_bad_input("'%s': the safetensors header is not valid JSON", file.c_str());
    }
    if (!h.is_object()) throw_bad_input("'%s': the safetensors header is not a JSON object", file.c_str());
    const uint64_t base = 8 + hlen, avail = f->size() - base;
    for (auto it = h.begin(); it != h.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        const json& e = it.value();
        if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets") ||
            !e["dtype"].is_string() || !e["shape"].is_array() || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
            throw_bad_input("'%s': tensor '%s' has a malformed header entry", file.c_str(), it.key().c_str());
        bool transpose;
        const std::string name = arch::family(m.config.arch).gguf_tensor_name(it.key(), &transpose);
        if (name.empty()) continue;
        if (name[0] == '?') throw_bad_input("'%s': unexpected tensor '%s' for a %s model", file.c_str(), it.key().c_str(), m.config.arch.c_str());
        Tensor t;
        t.name = name;
        t.dtype = st_dtype(e["dtype"].get<std::string>());
        if (t.dtype == DType::Unknown)
            throw_bad_input("'%s': tensor '%s' has dtype %s, which is not supported (F32, F16, BF16 are)", file.c_str(), it.key().c_str(),
                            e["dtype"].get<std::string>().c_str());
        double numel = 1;
        for (const auto& d : e["shape"]) {
            if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (int64_t(1) << 40))
                throw_bad_input("'%s': tensor '%s' has an absurd dimension", file.c_str(), it.key().c_str());
            t.shape.push_back(d.get<int64_t>());
            numel *= static_cast<double>(t.shape.back());
        }
        if (t.shape.empty() || numel > 9e15) throw_bad_input("'%s': tensor '%s' has an invalid shape", file.c_str(), it.key().c_str());
        const std::string what = "'" + file + "': tensor '" + it.key() + "' data offset";
        const auto b = static_cast<uint64_t>(json_integer(e["data_offsets"][0], 0, INT64_MAX, what)),
                   en = static_cast<uint64_t>(json_integer(e["data_offsets"][1], 0, INT64_MAX, what));
        if (b > en || en > avail)
            throw_bad_input("'%s' is truncated: tensor '%s' data runs past the end of the file", file.c_str(), it.key().c_str());
        if (en - b != t.nbytes())
            throw_bad_input("'%s': tensor '%s' has %llu bytes of data for shape %s", file.c_str(), it.key().c_str(),
                            static_cast<unsigned long long>(en - b), t.shape_str().c_str());
        t.data = f->data() + base + b;
        if (const float add = arch::family(m.config.arch).hf_tensor_offset(name); add != 0.0f) {  // in f32, as llama.cpp's converter
            m.add(m.own(name, DType::F32, t.shape, plus_f32(t, add)));
            continue;
        }
        const bool misaligned = reinterpret_cast<uintptr_t>(t.data) % weight_type(t.dtype, "load").alignment() != 0;
        if (transpose && t.shape.size() == 2) {
            std::vector<int64_t> shp = {t.shape[1], t.shape[0]};
            m.add(m.own(name, t.dtype, shp, transpose_bytes(t)));
        } else if (misaligned) {
            std::vector<uint8_t> copy(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes());
            m.add(m.own(name, t.dtype, t.shape, std::move(copy)));
        } else {
            (use_mmap ? m.mapped_bytes : m.owned_bytes) += t.nbytes();
            m.add(std::move(t));
        }
    }
    m.storage.push_back(f);
    if (use_mmap) m.mapped_files.emplace_back(f->data(), f->size());
}

}  // namespace

Model load_safetensors(const std::string& path, const LoadOptions& opts);

}  // namespace llmforge::formats

namespace llmforge {
ModelConfig config_from_hf_json(const std::string& text, const std::string& path) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw_bad_input("'%s' is not valid JSON", path.c_str());
    }
    if (!j.contains("vocab_size")) j["vocab_size"] = 1;
    return formats::config_from_hf(j, path);
}
}  // namespace llmforge

namespace llmforge::formats {

Model load_safetensors(const std::string& path, const LoadOptions& opts) {
    const std::string dir = dir_of(path);
    const std::string cfg_path = dir + "/config.json";
    if (!file_exists(cfg_path)) throw_bad_input("'%s': no config.json next to the safetensors weights", path.c_str());
    json cfg;
    try {
        cfg = json::parse(read_text_file(cfg_path));
    } catch (const json::exception& e) {
        throw_bad_input("'%s' is not valid JSON", cfg_path.c_str());
    }
    Model m;
    m.path = path;
    m.format = "safetensors";
    m.config = config_from_hf(cfg, cfg_path);
    // An embedding model's pooling, as sentence-transformers keeps it: its module list, modules.json — the Transformer,
    // then Pooling, whose directory's config.json names the mode (without modules.json: 1_Pooling/; without that: the
    // mean), then Normalize (llmforge L2-normalises every embedding). A module llmforge does not apply (Dense,
    // LayerNorm, …) is refused by name: the embeddings would differ from sentence-transformers' without a word.
    std::string pool_dir = "1_Pooling";
    const std::string modules_path = dir + "/modules.json";
    if (m.config.encoder && m.config.pooling != Pooling::Rank && file_exists(modules_path)) {
        const json mods = json::parse(read_text_file(modules_path), nullptr, false);
        if (mods.is_discarded() || !mods.is_array()) throw_bad_input("'%s' is not a JSON list of modules", modules_path.c_str());
        for (const json& e : mods) {
            if (!e.is_object() || !e.contains("type") || !e["type"].is_string() || (e.contains("path") && !e["path"].is_string()))
                throw_bad_input("'%s': a module without a \"type\" (and a \"path\") string", modules_path.c_str());
            const std::string type = e["type"].get<std::string>(), mpath = e.value("path", std::string());
            const std::string kind = type.substr(type.find_last_of('.') == std::string::npos ? 0 : type.find_last_of('.') + 1);
            if (kind == "Pooling") {
                if (mpath.empty() || mpath[0] == '/' || mpath.find("..") != std::string::npos)
                    throw_bad_input("'%s': the Pooling module's path '%s' is not a directory inside the model's", modules_path.c_str(), mpath.c_str());
                pool_dir = mpath;
            } else if (kind != "Transformer" && kind != "Normalize") {
                throw_bad_input("'%s': module '%s' (%s) is not supported: llmforge applies Transformer, Pooling and Normalize", modules_path.c_str(),
                                mpath.c_str(), type.c_str());
            }
        }
    }
    const std::string pool_path = dir + "/" + pool_dir + "/config.json";
    if (m.config.encoder && m.config.pooling != Pooling::Rank && file_exists(pool_path)) {
        json p;
        try {
            p = json::parse(read_text_file(pool_path));
        } catch (const json::exception&) {
            throw_bad_input("'%s' is not valid JSON", pool_path.c_str());
        }
        std::vector<std::string> modes;
        for (const char* k : {"pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_lasttoken", "pooling_mode_max_tokens",
                              "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens"})
            if (p.is_object() && p.value(k, false)) modes.push_back(k);
        if (modes.size() != 1 || modes[0] == "pooling_mode_max_tokens" || modes[0] == "pooling_mode_mean_sqrt_len_tokens" ||
            modes[0] == "pooling_mode_weightedmean_tokens")
            throw_bad_input("'%s': pooling %s is not supported (one of cls_token, mean_tokens, lasttoken is)", pool_path.c_str(),
                            modes.empty() ? "none" : modes[0].c_str());
        m.config.pooling = modes[0] == "pooling_mode_cls_token" ? Pooling::Cls : modes[0] == "pooling_mode_lasttoken" ? Pooling::Last : Pooling::Mean;
    }
    std::vector<std::string> files;
    if (is_directory(path)) {
        if (DIR* d = opendir(path.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(path + "/" + n);
            }
            closedir(d);
        }
        std::sort(files.begin(), files.end());
        if (files.empty()) throw_bad_input("'%s' holds no .safetensors files", path.c_str());
    } else {
        files.push_back(path);
    }
    for (const auto& f : files) read_file(m, f, opts.use_mmap);
    if (m.config.tied_embeddings && m.find("output.weight")) m.config.tied_embeddings = false;
    // a family whose checkpoints tie the output by default (GPT-2) ties it when the file has no output matrix
    if (!m.config.tied_embeddings && !m.find("output.weight") && arch::family(m.config.arch).describe().tied_embeddings) m.config.tied_embeddings = true;
    m.meta.set("general.name", gguf::Value::str(m.config.name));
    // The tokenizer: --tokenizer, else the Hugging Face tokenizer.json beside the weights.
    const std::string tj = dir + "/tokenizer.json";
    if (opts.tokenizer_path.empty() && file_exists(tj)) m.vocab = Vocab::load(tj);  // (--tokenizer: load_model attaches it)
    if (m.vocab) {
        if (m.vocab->size() > m.config.n_vocab)
            throw_bad_input("'%s': the tokenizer has %d tokens but the model's vocabulary has %lld", path.c_str(), m.vocab->size(),
                            static_cast<long long>(m.config.n_vocab));
        m.vocab->pad_to(static_cast<int32_t>(m.config.n_vocab));  // HF pads embeddings past the tokenizer (e.g. to a multiple of 64)
        // the chat template, from tokenizer_config.json
        const std::string tc = dir + "/tokenizer_config.json";
        if (file_exists(tc)) m.vocab->chat_template = chat_template_from_tokenizer_config(tc);
    }
    return m;
}

void save_safetensors(const Model& m, const std::string& path, DType dtype) {
    if (quant::is_quantized(dtype)) throw_bad_input("safetensors holds f32, f16 or bf16 tensors, not %s (write a .gguf)", dtype_name(dtype));
    std::string file = path, dir;
    const bool file_mode = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
    // What transformers reads beside the weights: config.json, the tokenizer (tokenizer.json: byte-level BPE or the
    // SentencePiece form, see vocab_hf.cpp) and tokenizer_config.json (special tokens, chat template).
    std::vector<std::pair<std::string, std::string>> side = {{"config.json", config_to_hf(m.config).dump(2) + "\n"}};
    if (m.vocab) {
        side.emplace_back("tokenizer.json", m.vocab->to_hf_json());
        side.emplace_back("tokenizer_config.json", m.vocab->hf_tokenizer_config(m.config.n_ctx));
    }
    // an embedding model's pooling, as sentence-transformers keeps it (load_safetensors reads it back); a reranker's is
    // its classification head (config.json says BertForSequenceClassification)
    if (m.config.encoder && m.config.pooling != Pooling::Rank) {
        const Pooling p = m.config.pooling;
        side.emplace_back("1_Pooling/config.json", json{{"word_embedding_dimension", m.config.n_embd},
                                                        {"pooling_mode_cls_token", p == Pooling::Cls},
                                                        {"pooling_mode_mean_tokens", p == Pooling::Mean || p == Pooling::None},
                                                        {"pooling_mode_max_tokens", false},
                                                        {"pooling_mode_mean_sqrt_len_tokens", false},
                                                        {"pooling_mode_lasttoken", p == Pooling::Last}}
                                                       .dump(2) + "\n");
        // sentence-transformers' module list: the model, its pooling, then L2 normalisation (as llmforge embeds)
        side.emplace_back("modules.json", json::array({{{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                                                       {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}},
                                                       {{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}}})
                                                .dump(2) + "\n");
    }
    if (file_mode) {
        dir = dir_of(path);
        // NAME.safetensors in a folder that may hold other things (the current directory, say): never replace another
        // model's config.json or tokenizer files there
        for (const auto& [name, text] : side) {
            const std::string p = dir + "/" + name;
            if (file_exists(p) && read_text_file(p) != text)
                throw_bad_input("'%s' already exists and belongs to another model: write into a directory of its own instead (e.g. %s/)",
                                p.c_str(), path.substr(0, path.size() - 12).c_str());
        }
    } else {
        dir = path;
        if (!is_directory(dir) && mkdir(dir.c_str(), 0755) != 0) throw_runtime("cannot create directory '%s'", dir.c_str());
        file = dir + "/model.safetensors";
    }
    Model tmp;
    std::vector<std::pair<std::string, Tensor>> out;
    const bool to_half = m.config.uses_rope() && m.config.rope_style == RopeStyle::Interleaved;  // HF: rotate_half
    for (const auto& [name, shape] : expected_tensors(m.config)) {
        Tensor t = m.get(name);
        // ggml's block types have no safetensors dtype: dequantised (to f32, or the type asked)
        if (quant::is_quantized(t.dtype)) t = tmp.own(name, DType::F32, t.shape, convert_bytes(t, DType::F32));
        bool transpose;
        const std::string hf = arch::family(m.config.arch).hf_tensor_name(name, &transpose);
        const bool is_q = name.find(".attn_q.") != std::string::npos, is_k = name.find(".attn_k.") != std::string::npos;
        if (to_half && (is_q || is_k)) t = tmp.own(name, t.dtype, t.shape, permute_rope_rows(t, is_q ? m.config.n_head : m.config.n_head_kv, true));
        if (transpose) t = tmp.own(name, t.dtype, {t.shape[1], t.shape[0]}, transpose_bytes(t));
        const float add = m.format == "gradients" ? 0.0f : arch::family(m.config.arch).hf_tensor_offset(name);  // (a gradient has no offset)
        if (add != 0.0f) {  // back to Hugging Face's values
            t = tmp.own(name, DType::F32, t.shape, plus_f32(t, -add));
        }
        const DType want = dtype == DType::Unknown ? t.dtype : dtype;
        if (want != t.dtype) t = tmp.own(name, want, t.shape, convert_bytes(t, want));
        out.emplace_back(hf, t);
    }
    json h = json::object();
    uint64_t off = 0;
    for (const auto& [hf, t] : out) {
        h[hf] = {{"dtype", st_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes()}}};
        off += t.nbytes();
    }
    h["__metadata__"] = {{"format", "pt"}};
    std::string hs = h.dump();
    while ((8 + hs.size()) % 8) hs += ' ';
    AtomicWriter w(file);
    const uint64_t hl = hs.size();
    w.write(&hl, 8);
    w.write(hs.data(), hs.size());
    for (const auto& [hf, t] : out) w.write(t.data, t.nbytes());
    w.commit();
    for (const auto& [name, text] : side) {
        const size_t slash = name.find('/');
        if (slash != std::string::npos) {
            const std::string sub = dir + "/" + name.substr(0, slash);
            if (!is_directory(sub) && mkdir(sub.c_str(), 0755) != 0) throw_runtime("cannot create directory '%s'", sub.c_str());
        }
        AtomicWriter s(dir + "/" + name);
        s.write(text.data(), text.size());
        s.commit();
    }
}

}  // namespace llmforge::formats
