// GGUF metadata values (see gguf_metadata.h).
#include "llmforge/gguf_metadata.h"

#include <sstream>

#include "llmforge/error.h"

namespace llmforge::gguf {


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
}  // namespace llmforge::gguf
