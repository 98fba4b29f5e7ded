// GGUF's metadata: typed key/value pairs (the model's configuration, its tokenizer, provenance), in file order. The
// values a model's description is read from and written to; reading and writing whole files is gguf.h's.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace llmforge::gguf {

enum class Type : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
    U64 = 10, I64 = 11, F64 = 12,
};

// One metadata value. Scalars live in i/u/f/b/s; arrays in the vector that matches the element type.
struct Value {
    Type type = Type::U32;
    Type elem = Type::U32;  // for arrays
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    bool b = false;
    std::string s;
    std::vector<std::string> arr_s;
    std::vector<int64_t> arr_i;  // integer and bool arrays
    std::vector<double> arr_f;   // float arrays

    static Value str(std::string v) { Value x; x.type = Type::STRING; x.s = std::move(v); return x; }
    static Value u32(uint32_t v) { Value x; x.type = Type::U32; x.u = v; x.i = v; return x; }
    static Value i32(int32_t v) { Value x; x.type = Type::I32; x.i = v; x.u = static_cast<uint64_t>(v); return x; }
    static Value f32(float v) { Value x; x.type = Type::F32; x.f = v; return x; }
    static Value boolean(bool v) { Value x; x.type = Type::BOOL; x.b = v; x.i = v; x.u = v; return x; }
    static Value strings(std::vector<std::string> v) { Value x; x.type = Type::ARRAY; x.elem = Type::STRING; x.arr_s = std::move(v); return x; }
    static Value floats(std::vector<double> v) { Value x; x.type = Type::ARRAY; x.elem = Type::F32; x.arr_f = std::move(v); return x; }
    static Value ints(std::vector<int64_t> v, Type elem = Type::I32) { Value x; x.type = Type::ARRAY; x.elem = elem; x.arr_i = std::move(v); return x; }

    bool is_int() const;
    size_t array_size() const;
    std::string to_string(size_t max_items = 8) const;  // for `llmforge info`
};

// Metadata in file order.
struct Metadata {
    std::vector<std::pair<std::string, Value>> kv;
    const Value* find(const std::string& key) const;
    void set(const std::string& key, Value v);
    void erase(const std::string& key);
    // Typed getters: a missing key returns the default; a key of the wrong type throws a bad-input Error.
    int64_t get_int(const std::string& key, int64_t def) const;
    double get_float(const std::string& key, double def) const;
    bool get_bool(const std::string& key, bool def) const;
    std::string get_string(const std::string& key, const std::string& def) const;
};

}  // namespace llmforge::gguf
