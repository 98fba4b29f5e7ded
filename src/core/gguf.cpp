#include "llmforge/gguf.h"

#include <cstring>
#include <sstream>

#include "core/mmap_file.h"
#include "llmforge/error.h"

namespace llmforge {

namespace gguf {

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
            if (dtype_row_bytes(t.dtype, dtype_block_size(t.dtype)) == 0)  // not even one block: an unknown type
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
