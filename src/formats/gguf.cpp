#include "llmforge/gguf.h"

#include <cstring>
#include <sstream>

#include "llmforge/error.h"

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

namespace gguf {

// ------------------------------------------------------------------------------------------ values
bool Value::is_int() const {
    return type == Type::U8 || type == Type::I8 || type == Type::U16 || type == Type::I16 || type == Type::U32 ||
           type == Type::I32 || type == Type::U64 || type == Type::I64 || type == Type::BOOL;
}

size_t Value::array_size() const {
    if (type != Type::ARRAY) return 0;
    if (elem == Type::STRING) return arr_s.size();
    if (elem == Type::F32 || elem == Type::F64) return arr_f.size();
    return arr_i.size();
}

static const char* type_name(Type t) {
    static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    auto i = static_cast<uint32_t>(t);
    return i < 13 ? names[i] : "?";
}

std::string Value::to_string(size_t max_items) const {
    std::ostringstream os;
    switch (type) {
        case Type::STRING: {
            std::string v = s.size() > 120 ? s.substr(0, 117) + "..." : s;
            for (char& c : v) if (c == '\n') c = ' ';
            os << '"' << v << '"';
            break;
        }
        case Type::F32: case Type::F64: os << f; break;
        case Type::BOOL: os << (b ? "true" : "false"); break;
        case Type::U64: case Type::U32: case Type::U16: case Type::U8: os << u; break;
        case Type::ARRAY: {
            os << type_name(elem) << "[" << array_size() << "] [";
            const size_t n = std::min(array_size(), max_items);
            for (size_t k = 0; k < n; ++k) {
                if (k) os << ", ";
                if (elem == Type::STRING) os << '"' << arr_s[k] << '"';
                else if (elem == Type::F32 || elem == Type::F64) os << arr_f[k];
                else os << arr_i[k];
            }
            if (array_size() > n) os << ", ...";
            os << "]";
            break;
        }
        default: os << i; break;
    }
    return os.str();
}

const Value* Metadata::find(const std::string& key) const {
    for (const auto& [k, v] : kv) if (k == key) return &v;
    return nullptr;
}
void Metadata::set(const std::string& key, Value v) {
    for (auto& [k, old] : kv) if (k == key) { old = std::move(v); return; }
    kv.emplace_back(key, std::move(v));
}
void Metadata::erase(const std::string& key) {
    for (auto it = kv.begin(); it != kv.end(); ++it) if (it->first == key) { kv.erase(it); return; }
}
int64_t Metadata::get_int(const std::string& key, int64_t def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (!v->is_int()) throw_bad_input("metadata '%s' should be an integer but is %s", key.c_str(), type_name(v->type));
    return v->type == Type::U64 ? static_cast<int64_t>(v->u) : v->i;
}
double Metadata::get_float(const std::string& key, double def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (v->type == Type::F32 || v->type == Type::F64) return v->f;
    if (v->is_int()) return static_cast<double>(v->i);
    throw_bad_input("metadata '%s' should be a number but is %s", key.c_str(), type_name(v->type));
}
bool Metadata::get_bool(const std::string& key, bool def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (v->type == Type::BOOL) return v->b;
    if (v->is_int()) return v->i != 0;
    throw_bad_input("metadata '%s' should be a bool but is %s", key.c_str(), type_name(v->type));
}
std::string Metadata::get_string(const std::string& key, const std::string& def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (v->type != Type::STRING) throw_bad_input("metadata '%s' should be a string but is %s", key.c_str(), type_name(v->type));
    return v->s;
}

// ------------------------------------------------------------------------------------------ reading
namespace {

// Bounds-checked little-endian cursor over the mapped file. Every read names what it was reading on failure.
struct Cursor {
    const uint8_t* p;
    size_t size;
    size_t pos = 0;
    const std::string& path;

    void need(size_t n, const char* what) {
        if (n > size - pos) throw_bad_input("'%s' is truncated: file ends while reading %s (offset %zu)", path.c_str(), what, pos);
    }
    template <class T> T get(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, p + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    std::string str(const char* what) {
        const uint64_t n = get<uint64_t>(what);
        if (n > size - pos) throw_bad_input("'%s' is corrupt: a string of %llu bytes in %s runs past the end of the file", path.c_str(), static_cast<unsigned long long>(n), what);
        std::string s(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(n));
        pos += static_cast<size_t>(n);
        return s;
    }
};

double read_scalar_num(Cursor& c, Type t, const char* what, int64_t* as_int) {
    switch (t) {
        case Type::U8: { auto v = c.get<uint8_t>(what); *as_int = v; return v; }
        case Type::I8: { auto v = c.get<int8_t>(what); *as_int = v; return v; }
        case Type::U16: { auto v = c.get<uint16_t>(what); *as_int = v; return v; }
        case Type::I16: { auto v = c.get<int16_t>(what); *as_int = v; return v; }
        case Type::U32: { auto v = c.get<uint32_t>(what); *as_int = v; return v; }
        case Type::I32: { auto v = c.get<int32_t>(what); *as_int = v; return v; }
        case Type::U64: { auto v = c.get<uint64_t>(what); *as_int = static_cast<int64_t>(v); return static_cast<double>(v); }
        case Type::I64: { auto v = c.get<int64_t>(what); *as_int = v; return static_cast<double>(v); }
        case Type::BOOL: { auto v = c.get<uint8_t>(what); *as_int = v != 0; return v != 0; }
        case Type::F32: { auto v = c.get<float>(what); *as_int = 0; return v; }
        case Type::F64: { auto v = c.get<double>(what); *as_int = 0; return v; }
        default: throw_bad_input("'%s' is corrupt: unknown metadata value type %u in %s", c.path.c_str(), static_cast<unsigned>(t), what);
    }
}

Value read_value(Cursor& c, Type t, const std::string& key) {
    Value v;
    v.type = t;
    const char* what = key.c_str();
    if (t == Type::STRING) {
        v.s = c.str(what);
    } else if (t == Type::ARRAY) {
        v.elem = static_cast<Type>(c.get<uint32_t>(what));
        const uint64_t n = c.get<uint64_t>(what);
        if (n > c.size - c.pos) throw_bad_input("'%s' is corrupt: array '%s' claims %llu elements, more than the file holds", c.path.c_str(), what, static_cast<unsigned long long>(n));
        if (v.elem == Type::STRING) {
            v.arr_s.reserve(n);
            for (uint64_t k = 0; k < n; ++k) v.arr_s.push_back(c.str(what));
        } else if (v.elem == Type::ARRAY) {
            throw_bad_input("'%s': nested metadata arrays ('%s') are not supported", c.path.c_str(), what);
        } else if (v.elem == Type::F32 || v.elem == Type::F64) {
            v.arr_f.reserve(n);
            int64_t dummy;
            for (uint64_t k = 0; k < n; ++k) v.arr_f.push_back(read_scalar_num(c, v.elem, what, &dummy));
        } else {
            v.arr_i.reserve(n);
            for (uint64_t k = 0; k < n; ++k) {
                int64_t iv;
                read_scalar_num(c, v.elem, what, &iv);
                v.arr_i.push_back(iv);
            }
        }
    } else {
        int64_t iv = 0;
        double f = read_scalar_num(c, t, what, &iv);
        v.f = f;
        v.i = iv;
        v.u = static_cast<uint64_t>(iv);
        v.b = iv != 0;
        if (t == Type::U64) { std::memcpy(&v.u, c.p + c.pos - 8, 8); }
    }
    return v;
}

}  // namespace

bool has_magic(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char m[4] = {};
    bool ok = std::fread(m, 1, 4, f) == 4 && std::memcmp(m, "GGUF", 4) == 0;
    std::fclose(f);
    return ok;
}

File read(const std::string& path, bool use_mmap) {
    File file;
    file.mapping = MappedFile::open(path, use_mmap);
    Cursor c{file.mapping->data(), file.mapping->size(), 0, path};
    if (c.size < 4 || std::memcmp(c.p, "GGUF", 4) != 0) throw_bad_input("'%s' is not a GGUF file (wrong magic)", path.c_str());
    c.pos = 4;
    file.version = c.get<uint32_t>("the version");
    if (file.version == 1) throw_bad_input("'%s' is GGUF v1, which is not supported (convert it with a newer llama.cpp)", path.c_str());
    if (file.version != 2 && file.version != 3) throw_bad_input("'%s' has unsupported GGUF version %u", path.c_str(), file.version);
    const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
    const uint64_t n_kv = c.get<uint64_t>("the metadata count");
    // Each tensor info and key/value takes at least 8+4 bytes: reject counts the file cannot hold.
    if (n_tensors > c.size / 12 || n_kv > c.size / 12)
        throw_bad_input("'%s' is truncated or corrupt: %llu tensors and %llu metadata entries cannot fit in %zu bytes", path.c_str(),
                        static_cast<unsigned long long>(n_tensors), static_cast<unsigned long long>(n_kv), c.size);
    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = c.str("a metadata key");
        const Type t = static_cast<Type>(c.get<uint32_t>(key.c_str()));
        file.meta.kv.emplace_back(key, read_value(c, t, key));
    }
    if (const Value* a = file.meta.find("general.alignment")) {
        if (!a->is_int() || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > 65536)
            throw_bad_input("'%s' is corrupt: general.alignment must be a power of two", path.c_str());
        file.alignment = a->u;
    }
    std::vector<uint64_t> offsets;
    for (uint64_t k = 0; k < n_tensors; ++k) {
        Tensor t;
        t.name = c.str("a tensor name");
        const uint32_t n_dims = c.get<uint32_t>(t.name.c_str());
        if (n_dims == 0 || n_dims > 4) throw_bad_input("'%s': tensor '%s' has %u dimensions (GGUF allows 1 to 4)", path.c_str(), t.name.c_str(), n_dims);
        std::vector<int64_t> ne(n_dims);
        int64_t numel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t v = c.get<uint64_t>(t.name.c_str());
            if (v == 0 || v > (uint64_t(1) << 40) || static_cast<double>(numel) * static_cast<double>(v) > 9e15)
                throw_bad_input("'%s': tensor '%s' has an absurd dimension %llu", path.c_str(), t.name.c_str(), static_cast<unsigned long long>(v));
            ne[d] = static_cast<int64_t>(v);
            numel *= ne[d];
        }
        t.shape.assign(ne.rbegin(), ne.rend());  // GGUF lists the innermost dimension first
        const uint32_t type = c.get<uint32_t>(t.name.c_str());
        t.dtype = static_cast<DType>(type);
        if (dtype_row_bytes(t.dtype, t.cols()) == 0) {
            if (block_bytes(t.dtype) == 0)
                throw_bad_input("'%s': tensor '%s' has GGML type id %u, which llmforge does not support yet", path.c_str(), t.name.c_str(), type);
            throw_bad_input("'%s': tensor '%s' has %lld columns, not a multiple of the %s block size", path.c_str(), t.name.c_str(), static_cast<long long>(t.cols()), dtype_name(t.dtype));
        }
        offsets.push_back(c.get<uint64_t>(t.name.c_str()));
        file.tensors.push_back(std::move(t));
    }
    const uint64_t data_start = (c.pos + file.alignment - 1) / file.alignment * file.alignment;
    for (size_t k = 0; k < file.tensors.size(); ++k) {
        Tensor& t = file.tensors[k];
        const uint64_t off = offsets[k];
        const uint64_t nb = t.nbytes();
        if (off % file.alignment != 0) throw_bad_input("'%s': tensor '%s' data offset %llu is not aligned to %llu", path.c_str(), t.name.c_str(), static_cast<unsigned long long>(off), static_cast<unsigned long long>(file.alignment));
        if (data_start > c.size || off > c.size - data_start || nb > c.size - data_start - off)
            throw_bad_input("'%s' is truncated: tensor '%s' data (%llu bytes at offset %llu) runs past the end of the file (%zu bytes)",
                            path.c_str(), t.name.c_str(), static_cast<unsigned long long>(nb), static_cast<unsigned long long>(data_start + off), c.size);
        t.data = c.p + data_start + off;
    }
    return file;
}

// ------------------------------------------------------------------------------------------ writing
namespace {
struct Out {
    AtomicWriter& w;
    template <class T> void put(T v) { w.write(&v, sizeof(T)); }
    void str(const std::string& s) { put<uint64_t>(s.size()); w.write(s.data(), s.size()); }
};

void write_scalar(Out& o, Type t, const Value& v, int64_t iv, double fv) {
    switch (t) {
        case Type::U8: o.put<uint8_t>(static_cast<uint8_t>(iv)); break;
        case Type::I8: o.put<int8_t>(static_cast<int8_t>(iv)); break;
        case Type::U16: o.put<uint16_t>(static_cast<uint16_t>(iv)); break;
        case Type::I16: o.put<int16_t>(static_cast<int16_t>(iv)); break;
        case Type::U32: o.put<uint32_t>(static_cast<uint32_t>(iv)); break;
        case Type::I32: o.put<int32_t>(static_cast<int32_t>(iv)); break;
        case Type::U64: o.put<uint64_t>(static_cast<uint64_t>(iv)); break;
        case Type::I64: o.put<int64_t>(iv); break;
        case Type::BOOL: o.put<uint8_t>(iv ? 1 : 0); break;
        case Type::F32: o.put<float>(static_cast<float>(fv)); break;
        case Type::F64: o.put<double>(fv); break;
        default: throw_runtime("gguf write: bad scalar type");
    }
    (void)v;
}
}  // namespace

void write(const std::string& path, const Metadata& meta, const std::vector<Tensor>& tensors, uint64_t alignment) {
    write_streaming(path, meta, tensors, [&](size_t i, AtomicWriter& w) { w.write(tensors[i].data, tensors[i].nbytes()); }, alignment);
}

void write_streaming(const std::string& path, const Metadata& meta_in, const std::vector<Tensor>& tensors,
                     const std::function<void(size_t, AtomicWriter&)>& write_data, uint64_t alignment) {
    Metadata meta = meta_in;
    if (alignment != 32) meta.set("general.alignment", Value::u32(static_cast<uint32_t>(alignment)));
    else meta.erase("general.alignment");
    AtomicWriter w(path);
    Out o{w};
    w.write("GGUF", 4);
    o.put<uint32_t>(3);
    o.put<uint64_t>(tensors.size());
    o.put<uint64_t>(meta.kv.size());
    for (const auto& [key, v] : meta.kv) {
        o.str(key);
        o.put<uint32_t>(static_cast<uint32_t>(v.type));
        if (v.type == Type::STRING) {
            o.str(v.s);
        } else if (v.type == Type::ARRAY) {
            o.put<uint32_t>(static_cast<uint32_t>(v.elem));
            o.put<uint64_t>(v.array_size());
            if (v.elem == Type::STRING) for (const auto& s : v.arr_s) o.str(s);
            else if (v.elem == Type::F32 || v.elem == Type::F64) for (double f : v.arr_f) write_scalar(o, v.elem, v, 0, f);
            else for (int64_t iv : v.arr_i) write_scalar(o, v.elem, v, iv, 0);
        } else {
            write_scalar(o, v.type, v, v.type == Type::U64 ? static_cast<int64_t>(v.u) : (v.type == Type::BOOL ? v.b : v.i), v.f);
        }
    }
    uint64_t off = 0;
    for (const Tensor& t : tensors) {
        o.str(t.name);
        o.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
        for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) o.put<uint64_t>(static_cast<uint64_t>(*it));
        o.put<uint32_t>(static_cast<uint32_t>(t.dtype));
        o.put<uint64_t>(off);
        off += (t.nbytes() + alignment - 1) / alignment * alignment;
    }
    w.write_zeros((alignment - w.offset() % alignment) % alignment);
    const uint64_t data_start = w.offset();
    off = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const size_t nb = tensors[i].nbytes();
        write_data(i, w);
        if (w.offset() != data_start + off + nb)
            throw_runtime("gguf write: tensor '%s' produced the wrong number of bytes", tensors[i].name.c_str());
        w.write_zeros((alignment - nb % alignment) % alignment);
        off += (nb + alignment - 1) / alignment * alignment;
    }
    w.commit();
}

}  // namespace gguf
}  // namespace llmforge
