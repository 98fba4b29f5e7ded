// The Jinja2 interpreter for chat templates (see jinja.h): template lexer → statement/expression tree → evaluation
// over Python-like values.
#include "llmforge/utf8.h"
#include "llmforge/jinja.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>
#include <variant>

#include "llmforge/error.h"

namespace llmforge::jinja {

namespace {

// ================================================================================================ values
struct Value;
// A list's items. Its destructor (and Object's, Callable's) hands the containers inside to a queue released one at a
// time (bury/drain below), so that freeing values nested a million deep does not recurse a million deep.
struct Array : std::vector<Value> {
    Array() = default;
    Array(std::vector<Value>&& v);
    Array(std::initializer_list<Value> l);
    Array(const Array&) = default;
    Array(Array&&) = default;
    Array& operator=(const Array&) = default;
    Array& operator=(Array&&) = default;
    ~Array();
};
struct Object;
struct Callable;
struct Interp;

struct Value {
    enum class T { Undefined, None, Bool, Int, Float, Str, List, Dict, Func };
    T t = T::Undefined;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;  // Str; for Undefined, the message an operation on it raises
    std::shared_ptr<Array> a;
    std::shared_ptr<Object> o;
    std::shared_ptr<Callable> fn;
    bool gen = false;  // List: a generator (what Jinja's map/select/reject filters return): iterable, nothing more

    static Value undefined(std::string why) { Value v; v.s = std::move(why); return v; }
    static Value none() { Value v; v.t = T::None; return v; }
    static Value boolean(bool x) { Value v; v.t = T::Bool; v.b = x; return v; }
    static Value integer(int64_t x) { Value v; v.t = T::Int; v.i = x; return v; }
    static Value number(double x) { Value v; v.t = T::Float; v.f = x; return v; }
    static Value str(std::string x) { Value v; v.t = T::Str; v.s = std::move(x); return v; }
    static Value list(Array x = {}) { Value v; v.t = T::List; v.a = std::make_shared<Array>(std::move(x)); return v; }
    static Value dict();
    bool is_undef() const { return t == T::Undefined; }
    bool is_num() const { return t == T::Int || t == T::Float || t == T::Bool; }
    double num() const { return t == T::Float ? f : t == T::Int ? static_cast<double>(i) : b ? 1.0 : 0.0; }
};

struct Object {
    std::vector<std::pair<std::string, Value>> items;  // insertion order, as Python dicts keep it
    bool is_namespace = false;
    Object() = default;
    Object(const Object&) = delete;
    ~Object();
    const Value* find(const std::string& k) const {
        for (const auto& [key, v] : items)
            if (key == k) return &v;
        return nullptr;
    }
    void set(const std::string& k, Value v) {
        for (auto& [key, old] : items)
            if (key == k) { old = std::move(v); return; }
        items.emplace_back(k, std::move(v));
    }
};
Value Value::dict() { Value v; v.t = T::Dict; v.o = std::make_shared<Object>(); return v; }

using Kwargs = std::vector<std::pair<std::string, Value>>;
struct Callable {
    std::string name;
    std::function<Value(Interp&, std::vector<Value>&, Kwargs&)> call;
    std::vector<Value> holds;  // the values its closure keeps (a bound method's object), for the cycle check
    ~Callable();
};
Value generator(Array items) {
    Value v = Value::list(std::move(items));
    v.gen = true;
    return v;
}
Value make_func(std::string name, std::function<Value(Interp&, std::vector<Value>&, Kwargs&)> f) {
    Value v;
    v.t = Value::T::Func;
    v.fn = std::make_shared<Callable>();
    v.fn->name = std::move(name);
    v.fn->call = std::move(f);
    return v;
}

// An error Jinja would raise while rendering; the line is added where it is caught.
struct RenderFailure {
    std::string msg;
};
[[noreturn]] void fail(std::string msg) { throw RenderFailure{std::move(msg)}; }
[[noreturn]] void fail_undefined(const Value& v) { fail("UndefinedError: " + (v.s.empty() ? std::string("value is undefined") : v.s)); }

std::string py_float_text(double f) {
    char b[64];
    std::snprintf(b, sizeof b, "%g", f);
    return b;
}

// ------------------------------------------------------------------------------------------ the sandbox
// Freeing without recursion: a container's destructor moves the containers inside it here, and the outermost one
// frees them one by one (each pushing its own), so the stack stays flat however deep the values nest.
struct Graveyard {
    std::vector<std::shared_ptr<void>> q;
    bool draining = false;
};
thread_local Graveyard t_grave;
void bury(Value& v) {
    if (v.a) t_grave.q.push_back(std::move(v.a));
    if (v.o) t_grave.q.push_back(std::move(v.o));
    if (v.fn) t_grave.q.push_back(std::move(v.fn));
}
void drain() {
    if (t_grave.draining) return;
    t_grave.draining = true;
    while (!t_grave.q.empty()) {
        std::shared_ptr<void> p = std::move(t_grave.q.back());
        t_grave.q.pop_back();
        p.reset();
    }
    t_grave.draining = false;
}
Array::Array(std::initializer_list<Value> l) : std::vector<Value>(l) {}
Array::Array(std::vector<Value>&& v) : std::vector<Value>(std::move(v)) {}
Array::~Array() {
    for (Value& v : *this) bury(v);
    drain();
}
Object::~Object() {
    for (auto& kv : items) bury(kv.second);
    drain();
}
Callable::~Callable() {
    for (Value& v : holds) bury(v);
    drain();
}

// One render's budget (Options::limits), thread-local so that every helper can charge it. Parsing and python_json()
// run without one: then only the fixed nesting bound applies.
struct Budget {
    Limits lim;
    int64_t iterations = 0;
    uint64_t alloc = 0, checks = 0;
    std::chrono::steady_clock::time_point start, deadline;
};
thread_local Budget* t_budget = nullptr;
thread_local int t_nesting = 0;
constexpr int kMaxNesting = 200;  // values nested in values without a budget; blocks and expressions when parsing

std::string size_text(uint64_t b) {
    char buf[64];
    if (b >= (uint64_t{1} << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
    else std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(b));
    return buf;
}
[[noreturn]] void limit_fail(const std::string& name, const std::string& what) { fail("template limit '" + name + "' exceeded: " + what); }
void check_time() {
    if (t_budget && std::chrono::steady_clock::now() > t_budget->deadline)
        limit_fail("seconds", "the render ran longer than " + py_float_text(t_budget->lim.seconds) + " s");
}
// Every so often (cheap enough for hot paths): the wall-time bound.
void maybe_check_time() {
    if (t_budget && (++t_budget->checks & 1023) == 0) check_time();
}
// The rendered text so far (or a captured block's).
void check_output(const std::string& out) {
    if (t_budget && out.size() > t_budget->lim.output_bytes)
        limit_fail("output_bytes", "the output grew past " + size_text(t_budget->lim.output_bytes));
}
// A loop body or a macro call.
void tick() {
    if (!t_budget) return;
    if (++t_budget->iterations > t_budget->lim.iterations)
        limit_fail("iterations", "more than " + std::to_string(t_budget->lim.iterations) + " loop iterations and macro calls");
    check_time();
}
// Bytes about to be built: fails before they are allocated when they would exceed the budget, else counts them.
void charge(uint64_t bytes) {
    if (!t_budget) return;
    if (bytes > t_budget->lim.alloc_bytes || t_budget->alloc + bytes > t_budget->lim.alloc_bytes)
        limit_fail("alloc_bytes", "the template would build more than " + size_text(t_budget->lim.alloc_bytes) + " of strings and lists");
    t_budget->alloc += bytes;
    check_time();
}
// n items of `each` bytes, without overflowing the product.
void charge_n(uint64_t n, uint64_t each) {
    if (each > 0 && n > (uint64_t{1} << 62) / each) charge(uint64_t{1} << 62);
    charge(n * each);
}
int nesting_limit() { return t_budget ? t_budget->lim.depth : kMaxNesting; }
// Recursion through nested values (repr, equality, comparison, JSON, sizes): bounded, so that a value nested
// deeper than the limit fails with its name instead of overflowing the stack.
struct Nest {
    Nest() {
        if (++t_nesting > nesting_limit()) {
            --t_nesting;
            limit_fail("depth", "values nested more than " + std::to_string(nesting_limit()) + " deep");
        }
        maybe_check_time();
    }
    ~Nest() { --t_nesting; }
    Nest(const Nest&) = delete;
};
// What a value holds, deep (its strings, its items' sizes): what building a copy of it costs.
uint64_t value_bytes(const Value& v) {
    uint64_t n = sizeof(Value) + v.s.size();
    if (v.t == Value::T::List && v.a) {
        Nest nest;
        for (const Value& x : *v.a) n += value_bytes(x);
    } else if (v.t == Value::T::Dict && v.o) {
        Nest nest;
        for (const auto& [k, x] : v.o->items) n += k.size() + value_bytes(x);
    }
    return n;
}
int64_t to_int(const Value& v);

// range()'s arguments, and how many numbers it gives (without overflow).
struct RangeArgs {
    int64_t start = 0, stop = 0, step = 1, count = 0;
    int64_t at(int64_t k) const { return static_cast<int64_t>(static_cast<__int128>(start) + static_cast<__int128>(k) * step); }
};
RangeArgs range_args(const std::vector<Value>& a) {
    RangeArgs r;
    if (a.size() == 1) r.stop = to_int(a[0]);
    else if (a.size() >= 2) {
        r.start = to_int(a[0]);
        r.stop = to_int(a[1]);
        if (a.size() > 2) r.step = to_int(a[2]);
    } else {
        fail("TypeError: range expected at least 1 argument");
    }
    if (r.step == 0) fail("ValueError: range() arg 3 must not be zero");
    const __int128 span = static_cast<__int128>(r.stop) - r.start;
    __int128 c = span / r.step + (span % r.step != 0 ? 1 : 0);
    if (c < 0) c = 0;
    r.count = static_cast<int64_t>(std::min<__int128>(c, INT64_MAX));
    return r;
}

// What a call or a filter built: its strings and items count against the budget (the scalars do not).
Value charged(Value r) {
    if (r.t == Value::T::Str) charge(r.s.size());
    else if (r.t == Value::T::List || r.t == Value::T::Dict) charge(value_bytes(r));
    return r;
}

// Does v hold the container `target` (a namespace being assigned to)? Bound methods are looked into through holds.
bool holds_container(const Value& v, const void* target) {
    if (v.a && v.a.get() == target) return true;
    if (v.o && v.o.get() == target) return true;
    Nest nest;
    if (v.a)
        for (const Value& x : *v.a)
            if (holds_container(x, target)) return true;
    if (v.o)
        for (const auto& kv : v.o->items)
            if (holds_container(kv.second, target)) return true;
    if (v.fn)
        for (const Value& x : v.fn->holds)
            if (holds_container(x, target)) return true;
    return false;
}
// Checked 64-bit integer arithmetic.
[[noreturn]] void int_overflow(const char* op) { limit_fail("integer", std::string("the result of '") + op + "' does not fit in 64 bits"); }
int64_t checked_int(double f) {
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) {
        if (std::isnan(f)) fail("ValueError: cannot convert float NaN to integer");
        limit_fail("integer", "the float " + py_float_text(f) + " does not fit in 64 bits");
    }
    return static_cast<int64_t>(f);
}

const char* type_name(const Value& v) {
    switch (v.t) {
        case Value::T::Undefined: return "Undefined";
        case Value::T::None: return "NoneType";
        case Value::T::Bool: return "bool";
        case Value::T::Int: return "int";
        case Value::T::Float: return "float";
        case Value::T::Str: return "str";
        case Value::T::List: return v.gen ? "generator" : "list";
        case Value::T::Dict: return v.o->is_namespace ? "Namespace" : "dict";
        case Value::T::Func: return "function";
    }
    return "?";
}

// ------------------------------------------------------------------------------------------ UTF-8 code points
std::u32string to_u32(const std::string& s) {
    std::u32string out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        if (i + static_cast<size_t>(n) > s.size()) n = 1;
        char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
        for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3f);
        out.push_back(cp);
        i += static_cast<size_t>(n);
    }
    return out;
}
void append_utf8(std::string& out, char32_t cp) { utf8_append(out, cp); }
std::string from_u32(const std::u32string& s) {
    std::string out;
    for (char32_t c : s) append_utf8(out, c);
    return out;
}
size_t u8_length(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xc0) != 0x80;
    return n;
}
// Python's str.isspace() for the characters templates meet
bool py_space(char32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x1f || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// ------------------------------------------------------------------------------------------ Python formatting
std::string py_float(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip digits
    std::string s(buf, r.ptr);
    // Python's repr: exponent form when the exponent is < -4 or ≥ 16, else positional with at least one decimal
    int exp10 = 0;
    std::string digits;
    bool neg = false;
    {
        char eb[64];
        auto re = std::to_chars(eb, eb + sizeof eb, x, std::chars_format::scientific);
        std::string e(eb, re.ptr);
        if (e[0] == '-') { neg = true; e.erase(0, 1); }
        const size_t epos = e.find('e');
        exp10 = std::stoi(e.substr(epos + 1));
        for (char c : e.substr(0, epos))
            if (c != '.') digits += c;
    }
    if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
    std::string out = neg ? "-" : "";
    if (exp10 < -4 || exp10 >= 16) {
        out += digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
        return out + eb;
    }
    if (exp10 < 0) return out + "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    const size_t int_len = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= int_len) return out + digits + std::string(int_len - digits.size(), '0') + ".0";
    return out + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

std::string py_repr_str(const std::string& s) {
    const bool has_sq = s.find('\'') != std::string::npos, has_dq = s.find('"') != std::string::npos;
    const char q = has_sq && !has_dq ? '"' : '\'';
    std::string out(1, q);
    for (unsigned char c : s) {
        if (c == static_cast<unsigned char>(q) || c == '\\') { out += '\\'; out += static_cast<char>(c); }
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) { char b[8]; std::snprintf(b, sizeof b, "\\x%02x", c); out += b; }
        else out += static_cast<char>(c);
    }
    return out + q;
}

std::string to_str(const Value& v);
std::string repr(const Value& v) {
    switch (v.t) {
        case Value::T::Str: return py_repr_str(v.s);
        case Value::T::List: {
            if (v.gen) return "<generator object at 0x0>";
            Nest nest;
            std::string out = "[";
            for (size_t k = 0; k < v.a->size(); ++k) out += (k ? ", " : "") + repr((*v.a)[k]);
            return out + "]";
        }
        case Value::T::Dict: {
            if (v.o->is_namespace) return "<Namespace>";
            Nest nest;
            std::string out = "{";
            bool first = true;
            for (const auto& [k, x] : v.o->items) {
                out += (first ? "" : ", ") + py_repr_str(k) + ": " + repr(x);
                first = false;
            }
            return out + "}";
        }
        default: return to_str(v);
    }
}
std::string to_str(const Value& v) {
    switch (v.t) {
        case Value::T::Undefined: return "";
        case Value::T::None: return "None";
        case Value::T::Bool: return v.b ? "True" : "False";
        case Value::T::Int: return std::to_string(v.i);
        case Value::T::Float: return py_float(v.f);
        case Value::T::Str: return v.s;
        case Value::T::Func: return "<function " + v.fn->name + ">";
        default: return repr(v);
    }
}

bool truthy(const Value& v) {
    switch (v.t) {
        case Value::T::Undefined:
        case Value::T::None: return false;
        case Value::T::Bool: return v.b;
        case Value::T::Int: return v.i != 0;
        case Value::T::Float: return v.f != 0;
        case Value::T::Str: return !v.s.empty();
        case Value::T::List: return v.gen || !v.a->empty();
        case Value::T::Dict: return v.o->is_namespace || !v.o->items.empty();
        case Value::T::Func: return true;
    }
    return false;
}

bool equal(const Value& x, const Value& y) {
    if (x.is_num() && y.is_num()) {
        if (x.t == Value::T::Float || y.t == Value::T::Float) return x.num() == y.num();
        const int64_t a = x.t == Value::T::Bool ? x.b : x.i, b = y.t == Value::T::Bool ? y.b : y.i;
        return a == b;
    }
    if (x.t != y.t) return false;
    switch (x.t) {
        case Value::T::Undefined:
        case Value::T::None: return true;
        case Value::T::Str: return x.s == y.s;
        case Value::T::List: {
            if (x.a->size() != y.a->size()) return false;
            Nest nest;
            for (size_t k = 0; k < x.a->size(); ++k)
                if (!equal((*x.a)[k], (*y.a)[k])) return false;
            return true;
        }
        case Value::T::Dict: {
            if (x.o == y.o) return true;
            if (x.o->items.size() != y.o->items.size()) return false;
            Nest nest;
            for (const auto& [k, v] : x.o->items) {
                const Value* w = y.o->find(k);
                if (!w || !equal(v, *w)) return false;
            }
            return true;
        }
        case Value::T::Func: return x.fn == y.fn;
        default: return false;
    }
}

int compare(const Value& x, const Value& y, const char* op) {
    if (x.is_undef()) fail_undefined(x);
    if (y.is_undef()) fail_undefined(y);
    if (x.is_num() && y.is_num()) return x.num() < y.num() ? -1 : x.num() > y.num() ? 1 : 0;
    if (x.t == Value::T::Str && y.t == Value::T::Str) {
        const auto a = to_u32(x.s), b = to_u32(y.s);
        return a < b ? -1 : a > b ? 1 : 0;
    }
    if (x.t == Value::T::List && y.t == Value::T::List) {
        Nest nest;
        for (size_t k = 0; k < std::min(x.a->size(), y.a->size()); ++k) {
            if (equal((*x.a)[k], (*y.a)[k])) continue;
            return compare((*x.a)[k], (*y.a)[k], op);
        }
        return x.a->size() < y.a->size() ? -1 : x.a->size() > y.a->size() ? 1 : 0;
    }
    fail(std::string("TypeError: '") + op + "' not supported between instances of '" + type_name(x) + "' and '" + type_name(y) + "'");
}

// JSON ↔ values
Value from_json(const nlohmann::ordered_json& j) {
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return Value::none();
        case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: return Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
        case nlohmann::ordered_json::value_t::number_float: return Value::number(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return Value::str(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            Nest nest;
            charge_n(j.size(), sizeof(Value));
            Array a;
            for (const auto& x : j) a.push_back(from_json(x));
            return Value::list(std::move(a));
        }
        case nlohmann::ordered_json::value_t::object: {
            Nest nest;
            charge_n(j.size(), sizeof(Value) + 32);
            Value d = Value::dict();
            for (auto it = j.begin(); it != j.end(); ++it) d.o->items.emplace_back(it.key(), from_json(it.value()));
            return d;
        }
        default: return Value::none();
    }
}

void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); out += b; }
                else out += static_cast<char>(c);
        }
    }
    out += '"';
}

// json.dumps(v, ensure_ascii=False, indent=indent): separators ", " and ": " on one line, "," and ": " with an indent
struct JsonStyle {
    int indent = -1;                     // < 0: one line
    std::string item_sep, key_sep = ": ";  // item_sep empty: ", " on one line, "," with an indent (Python's defaults)
    bool sort_keys = false;
};
void dump_json(std::string& out, const Value& v, const JsonStyle& st, int depth) {
    const int indent = st.indent;
    const std::string item_sep = !st.item_sep.empty() ? st.item_sep : indent >= 0 ? "," : ", ";
    auto newline = [&](int d) {
        charge_n(static_cast<uint64_t>(indent), static_cast<uint64_t>(d) + 1);
        out += '\n';
        out.append(static_cast<size_t>(indent) * static_cast<size_t>(d), ' ');
    };
    switch (v.t) {
        case Value::T::None: out += "null"; return;
        case Value::T::Bool: out += v.b ? "true" : "false"; return;
        case Value::T::Int: out += std::to_string(v.i); return;
        case Value::T::Float:
            if (std::isnan(v.f)) out += "NaN";
            else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
            else out += py_float(v.f);
            return;
        case Value::T::Str: json_string(out, v.s); return;
        case Value::T::List: {
            if (v.gen) fail("TypeError: Object of type generator is not JSON serializable");
            if (v.a->empty()) { out += "[]"; return; }
            Nest nest;
            out += '[';
            for (size_t k = 0; k < v.a->size(); ++k) {
                if (k) out += item_sep;
                if (indent >= 0) newline(depth + 1);
                dump_json(out, (*v.a)[k], st, depth + 1);
            }
            if (indent >= 0) newline(depth);
            out += ']';
            return;
        }
        case Value::T::Dict: {
            if (v.o->is_namespace) fail("TypeError: Object of type Namespace is not JSON serializable");
            if (v.o->items.empty()) { out += "{}"; return; }
            Nest nest;
            out += '{';
            bool first = true;
            std::vector<const std::pair<std::string, Value>*> items;
            for (const auto& kv : v.o->items) items.push_back(&kv);
            if (st.sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return to_u32(a->first) < to_u32(b->first); });
            for (const auto* kv : items) {
                if (!first) out += item_sep;
                first = false;
                if (indent >= 0) newline(depth + 1);
                json_string(out, kv->first);
                out += st.key_sep;
                dump_json(out, kv->second, st, depth + 1);
            }
            if (indent >= 0) newline(depth);
            out += '}';
            return;
        }
        case Value::T::Undefined: fail("TypeError: Object of type Undefined is not JSON serializable");
        case Value::T::Func: fail("TypeError: Object of type function is not JSON serializable");
    }
}

// ================================================================================================ lexer
struct Token {
    enum class K { Name, Int, Float, Str, Op, End };
    K k = K::End;
    std::string s;
    int64_t i = 0;
    double f = 0;
};

std::vector<Token> tokenize_expr(const std::string& src, int line) {
    std::vector<Token> out;
    size_t p = 0;
    auto err = [&](const std::string& m) { throw_bad_input("chat template: line %d: %s", line, m.c_str()); };
    while (p < src.size()) {
        const char c = src[p];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { ++p; continue; }
        Token t;
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t e = p;
            while (e < src.size() && (std::isalnum(static_cast<unsigned char>(src[e])) || src[e] == '_')) ++e;
            t.k = Token::K::Name;
            t.s = src.substr(p, e - p);
            p = e;
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            size_t e = p;
            bool is_float = false;
            while (e < src.size() && (std::isdigit(static_cast<unsigned char>(src[e])) || src[e] == '_')) ++e;
            if (e + 1 < src.size() && src[e] == '.' && std::isdigit(static_cast<unsigned char>(src[e + 1]))) {
                is_float = true;
                ++e;
                while (e < src.size() && std::isdigit(static_cast<unsigned char>(src[e]))) ++e;
            }
            if (e < src.size() && (src[e] == 'e' || src[e] == 'E')) {
                size_t q = e + 1;
                if (q < src.size() && (src[q] == '+' || src[q] == '-')) ++q;
                if (q < src.size() && std::isdigit(static_cast<unsigned char>(src[q]))) {
                    is_float = true;
                    e = q;
                    while (e < src.size() && std::isdigit(static_cast<unsigned char>(src[e]))) ++e;
                }
            }
            std::string num;
            for (size_t k = p; k < e; ++k)
                if (src[k] != '_') num += src[k];
            if (is_float) { t.k = Token::K::Float; t.f = std::strtod(num.c_str(), nullptr); }  // 1e999: inf, as Python
            else {
                t.k = Token::K::Int;
                const auto r = std::from_chars(num.data(), num.data() + num.size(), t.i);
                if (r.ec != std::errc()) throw_bad_input("chat template: line %d: template limit 'integer' exceeded: the literal %s does not fit in 64 bits", line, num.c_str());
            }
            p = e;
        } else if (c == '\'' || c == '"') {
            std::string s;
            size_t e = p + 1;
            for (;;) {
                if (e >= src.size()) err("unterminated string");
                const char d = src[e];
                if (d == c) { ++e; break; }
                if (d == '\\' && e + 1 < src.size()) {
                    const char x = src[e + 1];
                    e += 2;
                    switch (x) {
                        case 'n': s += '\n'; break;
                        case 't': s += '\t'; break;
                        case 'r': s += '\r'; break;
                        case '0': s += '\0'; break;
                        case 'a': s += '\a'; break;
                        case 'b': s += '\b'; break;
                        case 'f': s += '\f'; break;
                        case 'v': s += '\v'; break;
                        case '\\': s += '\\'; break;
                        case '\'': s += '\''; break;
                        case '"': s += '"'; break;
                        case '\n': break;  // line continuation
                        case 'x': case 'u': case 'U': {
                            const size_t n = x == 'x' ? 2 : x == 'u' ? 4 : 8;
                            if (e + n > src.size() || !std::all_of(src.begin() + static_cast<std::ptrdiff_t>(e), src.begin() + static_cast<std::ptrdiff_t>(e + n),
                                                                   [](char h) { return std::isxdigit(static_cast<unsigned char>(h)) != 0; }))
                                err("truncated \\" + std::string(1, x) + " escape");  // (Python's words)
                            const unsigned long cp = std::strtoul(src.substr(e, n).c_str(), nullptr, 16);
                            if (cp > 0x10FFFF) err("illegal Unicode character in a \\U escape");
                            if (cp >= 0xD800 && cp <= 0xDFFF) err("a surrogate in a \\u escape is not text");  // (Python keeps it; UTF-8 cannot)
                            append_utf8(s, static_cast<char32_t>(cp));
                            e += n;
                            break;
                        }
                        default: s += '\\'; s += x;
                    }
                    continue;
                }
                s += d;
                ++e;
            }
            t.k = Token::K::Str;
            t.s = std::move(s);
            p = e;
        } else {
            static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                                        "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
            bool found = false;
            for (const char* op : ops) {
                const size_t n = std::strlen(op);
                if (src.compare(p, n, op) == 0) {
                    t.k = Token::K::Op;
                    t.s = op;
                    p += n;
                    found = true;
                    break;
                }
            }
            if (!found) err(std::string("unexpected character '") + c + "'");
        }
        out.push_back(std::move(t));
    }
    out.push_back(Token{});
    return out;
}

// The template split into text, {{ expression }} and {% statement %} pieces, whitespace control applied.
struct Piece {
    enum class K { Text, Expr, Stmt };
    K k;
    std::string s;
    int line;
};

std::vector<Piece> split_template(const std::string& src, const Options& opt) {
    std::vector<Piece> out;
    size_t p = 0;
    int line = 1;
    bool strip_next = false;  // a "-" closed the previous tag: strip the whitespace that follows it
    bool trim_next = false;   // trim_blocks: drop one newline after the previous block tag
    auto count_lines = [&](size_t a, size_t b) {
        for (size_t k = a; k < b; ++k) line += src[k] == '\n';
    };
    auto add_text = [&](std::string text, int at) {
        if (strip_next) {
            size_t k = 0;
            while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
            text.erase(0, k);
        } else if (trim_next) {
            if (text.rfind("\r\n", 0) == 0) text.erase(0, 2);
            else if (!text.empty() && text[0] == '\n') text.erase(0, 1);
        }
        strip_next = trim_next = false;
        if (!text.empty()) out.push_back({Piece::K::Text, std::move(text), at});
    };
    while (p < src.size()) {
        size_t open = std::string::npos;
        for (size_t q = src.find('{', p); q != std::string::npos; q = src.find('{', q + 1))
            if (q + 1 < src.size() && (src[q + 1] == '{' || src[q + 1] == '%' || src[q + 1] == '#')) { open = q; break; }
        if (open == std::string::npos) {
            add_text(src.substr(p), line);
            count_lines(p, src.size());
            break;
        }
        const char kind = src[open + 1];
        std::string text = src.substr(p, open - p);
        const int text_line = line;
        count_lines(p, open);
        const int tag_line = line;
        size_t q = open + 2;
        const bool strip_before = q < src.size() && src[q] == '-';
        const bool keep_before = q < src.size() && src[q] == '+';
        if (strip_before || keep_before) ++q;
        // remove whitespace before the tag
        if (strip_before) {
            size_t e = text.size();
            while (e > 0 && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
            text.resize(e);
        } else if (opt.lstrip_blocks && !keep_before && kind != '{') {
            // only spaces and tabs between the start of the line and the tag: remove them
            size_t e = text.size();
            while (e > 0 && (text[e - 1] == ' ' || text[e - 1] == '\t')) --e;
            const bool at_line_start = e > 0 ? text[e - 1] == '\n' : p == 0;
            if (at_line_start) text.resize(e);
        }
        add_text(std::move(text), text_line);
        // find the end of the tag, skipping string literals
        const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
        size_t e = q;
        char quote = 0;
        size_t end = std::string::npos;
        if (kind == '#') {
            end = src.find("#}", q);
        } else {
            for (; e + 1 < src.size(); ++e) {
                const char c = src[e];
                if (quote) {
                    if (c == '\\') ++e;
                    else if (c == quote) quote = 0;
                    continue;
                }
                if (c == '\'' || c == '"') { quote = c; continue; }
                if (src.compare(e, 2, close) == 0) { end = e; break; }
            }
        }
        if (end == std::string::npos) throw_bad_input("chat template: line %d: unclosed '%c%c' tag", tag_line, '{', kind);
        const bool strip_after = end > q && src[end - 1] == '-';
        std::string inner = src.substr(q, (strip_after ? end - 1 : end) - q);
        count_lines(open, end + 2);
        p = end + 2;
        if (kind == '{') out.push_back({Piece::K::Expr, inner, tag_line});
        else if (kind == '%') {
            // {% raw %} … {% endraw %}: the text in between is not interpreted
            std::string word = inner;
            word.erase(0, word.find_first_not_of(" \t\r\n"));
            word.erase(word.find_last_not_of(" \t\r\n") + 1);
            if (word == "raw") {
                size_t r = p;
                size_t rs = std::string::npos, re = 0;
                for (;;) {
                    r = src.find("{%", r);
                    if (r == std::string::npos) throw_bad_input("chat template: line %d: {%% raw %%} without {%% endraw %%}", tag_line);
                    size_t w = r + 2;
                    if (w < src.size() && (src[w] == '-' || src[w] == '+')) ++w;
                    while (w < src.size() && std::isspace(static_cast<unsigned char>(src[w]))) ++w;
                    if (src.compare(w, 6, "endraw") == 0) {
                        rs = r;
                        re = src.find("%}", w);
                        if (re == std::string::npos) throw_bad_input("chat template: line %d: unclosed endraw", tag_line);
                        break;
                    }
                    r += 2;
                }
                strip_next = strip_after;
                trim_next = !strip_after && opt.trim_blocks;
                std::string raw = src.substr(p, rs - p);
                if (src[rs + 2] == '-') {
                    size_t k = raw.size();
                    while (k > 0 && std::isspace(static_cast<unsigned char>(raw[k - 1]))) --k;
                    raw.resize(k);
                }
                add_text(std::move(raw), line);
                count_lines(p, re + 2);
                strip_next = src[re - 1] == '-';
                trim_next = !strip_next && opt.trim_blocks;
                p = re + 2;
                continue;
            }
            out.push_back({Piece::K::Stmt, inner, tag_line});
        }
        strip_next = strip_after;
        trim_next = !strip_after && kind != '{' && opt.trim_blocks;
    }
    return out;
}

// ================================================================================================ syntax tree
struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
    enum class K { Const, Name, List, Tuple, Dict, Attr, Item, Slice, Call, Filter, Test, Unary, Binary, And, Or, Not, Cond, Compare };
    K k;
    int line = 0;
    Value value;                 // Const
    std::string name;            // Name, Attr, Filter, Test, Unary/Binary op
    std::vector<ExprP> args;     // operands / positional arguments / elements
    std::vector<std::pair<std::string, ExprP>> kwargs;
    std::vector<std::string> ops;  // Compare: the operators between args
    bool negated = false;        // Test: "is not"
    bool has[3] = {false, false, false};  // Slice: which of start, stop, step are given
};

struct Node;
using NodeP = std::unique_ptr<Node>;
using Body = std::vector<NodeP>;

struct Node {
    enum class K { Text, Output, If, For, Set, SetBlock, Macro, FilterBlock, Break, Continue, Generation };
    K k;
    int line = 0;
    std::string text;                         // Text; Set/SetBlock/Macro target name
    ExprP expr;                               // Output, For iterable, Set value
    std::vector<std::pair<ExprP, Body>> branches;  // If: (condition or null for else, body)
    std::vector<std::string> targets;         // For / Set unpacking names
    std::string attr;                         // Set ns.attr
    ExprP cond;                               // For ... if cond
    Body body, else_body;
    std::vector<std::pair<std::string, ExprP>> params;  // Macro parameters (default or null)
    ExprP filter;                             // FilterBlock / SetBlock filter: a Filter expr applied to a placeholder
};

class Parser {
public:
    Parser(std::vector<Token> toks, int line) : t_(std::move(toks)), line_(line) {}

    const Token& peek(size_t k = 0) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
    bool at_end() const { return peek().k == Token::K::End; }
    bool is_op(const char* op, size_t k = 0) const { return peek(k).k == Token::K::Op && peek(k).s == op; }
    bool is_name(const char* n, size_t k = 0) const { return peek(k).k == Token::K::Name && peek(k).s == n; }
    Token next() { return t_[std::min(pos_++, t_.size() - 1)]; }
    [[noreturn]] void err(const std::string& m) const { throw_bad_input("chat template: line %d: %s", line_, m.c_str()); }
    void expect_op(const char* op) {
        if (!is_op(op)) err(std::string("expected '") + op + "', got '" + (at_end() ? std::string("end of tag") : peek().s) + "'");
        ++pos_;
    }
    std::string expect_name() {
        if (peek().k != Token::K::Name) err("expected a name, got '" + (at_end() ? std::string("end of tag") : peek().s) + "'");
        return next().s;
    }
    void expect_end() {
        if (!at_end()) err("unexpected '" + peek().s + "'");
    }

    ExprP mk(Expr::K k) {
        auto e = std::make_unique<Expr>();
        e->k = k;
        e->line = line_;
        return e;
    }

    ExprP expression() {  // conditional expression
        Deep deep(this);
        ExprP e = or_expr();
        while (is_name("if")) {
            ++pos_;
            ExprP c = mk(Expr::K::Cond);
            ExprP test = or_expr();
            ExprP other;
            if (is_name("else")) {
                ++pos_;
                other = expression();
            }
            c->args.push_back(std::move(test));
            c->args.push_back(std::move(e));
            if (other) c->args.push_back(std::move(other));
            e = std::move(c);
        }
        return e;
    }
    ExprP or_expr() {
        ExprP e = and_expr();
        while (is_name("or")) {
            ++pos_;
            ExprP o = mk(Expr::K::Or);
            o->args.push_back(std::move(e));
            o->args.push_back(and_expr());
            e = std::move(o);
        }
        return e;
    }
    ExprP and_expr() {
        ExprP e = not_expr();
        while (is_name("and")) {
            ++pos_;
            ExprP o = mk(Expr::K::And);
            o->args.push_back(std::move(e));
            o->args.push_back(not_expr());
            e = std::move(o);
        }
        return e;
    }
    ExprP not_expr() {
        if (is_name("not")) {
            Deep deep(this);
            ++pos_;
            ExprP o = mk(Expr::K::Not);
            o->args.push_back(not_expr());
            return o;
        }
        return compare();
    }
    ExprP compare() {
        ExprP e = math1();
        ExprP c;
        for (;;) {
            std::string op;
            if (peek().k == Token::K::Op && (peek().s == "==" || peek().s == "!=" || peek().s == "<" || peek().s == "<=" || peek().s == ">" || peek().s == ">=")) op = next().s;
            else if (is_name("in")) { ++pos_; op = "in"; }
            else if (is_name("not") && is_name("in", 1)) { pos_ += 2; op = "not in"; }
            else break;
            if (!c) {
                c = mk(Expr::K::Compare);
                c->args.push_back(std::move(e));
            }
            c->ops.push_back(op);
            c->args.push_back(math1());
        }
        return c ? std::move(c) : std::move(e);
    }
    ExprP binary(ExprP l, const std::string& op, ExprP r) {
        ExprP b = mk(Expr::K::Binary);
        b->name = op;
        b->args.push_back(std::move(l));
        b->args.push_back(std::move(r));
        return b;
    }
    ExprP math1() {
        ExprP e = concat();
        while (is_op("+") || is_op("-")) {
            const std::string op = next().s;
            e = binary(std::move(e), op, concat());
        }
        return e;
    }
    ExprP concat() {
        ExprP e = math2();
        while (is_op("~")) {
            ++pos_;
            e = binary(std::move(e), "~", math2());
        }
        return e;
    }
    ExprP math2() {
        ExprP e = power();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string op = next().s;
            e = binary(std::move(e), op, power());
        }
        return e;
    }
    ExprP power() {
        ExprP e = unary();
        while (is_op("**")) {
            ++pos_;
            e = binary(std::move(e), "**", unary());
        }
        return e;
    }
    ExprP unary() {
        if (is_op("-") || is_op("+")) {
            Deep deep(this);
            ExprP u = mk(Expr::K::Unary);
            u->name = next().s;
            u->args.push_back(unary());
            return u;
        }
        ExprP e = postfix(primary());
        return filters(std::move(e));
    }
    void call_args(Expr& e) {  // after "("
        while (!is_op(")")) {
            if (peek().k == Token::K::Name && is_op("=", 1)) {
                std::string n = next().s;
                ++pos_;
                e.kwargs.emplace_back(std::move(n), expression());
            } else {
                e.args.push_back(expression());
            }
            if (!is_op(",")) break;
            ++pos_;
        }
        expect_op(")");
    }
    ExprP postfix(ExprP e) {
        for (;;) {
            if (is_op(".")) {
                ++pos_;
                ExprP a = mk(Expr::K::Attr);
                if (peek().k == Token::K::Int) a->name = std::to_string(next().i);
                else a->name = expect_name();
                a->args.push_back(std::move(e));
                e = std::move(a);
            } else if (is_op("[")) {
                ++pos_;
                ExprP parts[3];
                bool has[3] = {false, false, false};
                bool slice = false;
                for (int k = 0; k < 3; ++k) {
                    if (!is_op(":") && !is_op("]")) { parts[k] = expression(); has[k] = true; }
                    if (k < 2 && is_op(":")) { ++pos_; slice = true; continue; }
                    break;
                }
                expect_op("]");
                if (slice) {
                    ExprP s = mk(Expr::K::Slice);
                    s->args.push_back(std::move(e));
                    for (int k = 0; k < 3; ++k) {
                        s->has[k] = has[k];
                        s->args.push_back(has[k] ? std::move(parts[k]) : nullptr);
                    }
                    e = std::move(s);
                } else {
                    if (!has[0]) err("empty subscript");
                    ExprP it = mk(Expr::K::Item);
                    it->args.push_back(std::move(e));
                    it->args.push_back(std::move(parts[0]));
                    e = std::move(it);
                }
            } else if (is_op("(")) {
                ++pos_;
                ExprP c = mk(Expr::K::Call);
                c->args.push_back(std::move(e));
                call_args(*c);
                e = std::move(c);
            } else {
                return e;
            }
        }
    }
    ExprP filters(ExprP e) {
        for (;;) {
            if (is_op("|")) {
                ++pos_;
                ExprP f = mk(Expr::K::Filter);
                f->name = expect_name();
                while (is_op(".")) { ++pos_; f->name += "." + expect_name(); }
                f->args.push_back(std::move(e));
                if (is_op("(")) { ++pos_; call_args(*f); }
                e = std::move(f);
            } else if (is_name("is")) {
                ++pos_;
                ExprP t = mk(Expr::K::Test);
                if (is_name("not")) { ++pos_; t->negated = true; }
                t->name = expect_name();
                t->args.push_back(std::move(e));
                if (is_op("(")) {
                    ++pos_;
                    call_args(*t);
                } else if (peek().k == Token::K::Str || peek().k == Token::K::Int || peek().k == Token::K::Float ||
                           (peek().k == Token::K::Name && !is_name("and") && !is_name("or") && !is_name("if") && !is_name("else") &&
                            !is_name("is") && !is_name("in") && !is_name("not"))) {
                    t->args.push_back(postfix(primary()));  // a test with one argument without parentheses: "is divisibleby 3"
                }
                e = std::move(t);
            } else {
                return e;
            }
        }
    }
    ExprP primary() {
        const Token t = next();
        switch (t.k) {
            case Token::K::Name: {
                ExprP e = mk(Expr::K::Const);
                if (t.s == "true" || t.s == "True") e->value = Value::boolean(true);
                else if (t.s == "false" || t.s == "False") e->value = Value::boolean(false);
                else if (t.s == "none" || t.s == "None") e->value = Value::none();
                else {
                    e->k = Expr::K::Name;
                    e->name = t.s;
                }
                return e;
            }
            case Token::K::Int: { ExprP e = mk(Expr::K::Const); e->value = Value::integer(t.i); return e; }
            case Token::K::Float: { ExprP e = mk(Expr::K::Const); e->value = Value::number(t.f); return e; }
            case Token::K::Str: {
                std::string s = t.s;
                while (peek().k == Token::K::Str) s += next().s;  // adjacent literals concatenate
                ExprP e = mk(Expr::K::Const);
                e->value = Value::str(std::move(s));
                return e;
            }
            case Token::K::Op:
                if (t.s == "(") {
                    if (is_op(")")) { ++pos_; return mk(Expr::K::Tuple); }
                    ExprP first = expression();
                    if (is_op(")")) { ++pos_; return first; }
                    ExprP tup = mk(Expr::K::Tuple);
                    tup->args.push_back(std::move(first));
                    while (is_op(",")) {
                        ++pos_;
                        if (is_op(")")) break;
                        tup->args.push_back(expression());
                    }
                    expect_op(")");
                    return tup;
                }
                if (t.s == "[") {
                    ExprP l = mk(Expr::K::List);
                    while (!is_op("]")) {
                        l->args.push_back(expression());
                        if (!is_op(",")) break;
                        ++pos_;
                    }
                    expect_op("]");
                    return l;
                }
                if (t.s == "{") {
                    ExprP d = mk(Expr::K::Dict);
                    while (!is_op("}")) {
                        d->args.push_back(expression());
                        expect_op(":");
                        d->args.push_back(expression());
                        if (!is_op(",")) break;
                        ++pos_;
                    }
                    expect_op("}");
                    return d;
                }
                err("unexpected '" + t.s + "'");
            case Token::K::End: err("unexpected end of expression");
        }
        err("bad expression");
    }
    // for / set targets: a name, or names separated by commas (optionally in parentheses); or ns.attr for set
    std::vector<std::string> targets() {
        std::vector<std::string> names;
        const bool paren = is_op("(");
        if (paren) ++pos_;
        names.push_back(expect_name());
        while (is_op(",")) {
            ++pos_;
            names.push_back(expect_name());
        }
        if (paren) expect_op(")");
        return names;
    }

    std::vector<Token> t_;
    size_t pos_ = 0;
    int line_;
    int depth_ = 0;
    // Nesting of sub-expressions (parentheses, lists, calls, unary operators): bounded, so that parsing and
    // evaluating never recurse deeper than the stack allows.
    struct Deep {
        Parser* p;
        explicit Deep(Parser* q) : p(q) {
            if (++p->depth_ > kMaxNesting) {
                --p->depth_;
                p->err("template limit 'depth' exceeded: expressions nested more than " + std::to_string(kMaxNesting) + " deep");
            }
        }
        ~Deep() { --p->depth_; }
    };
};

class TemplateParser {
public:
    explicit TemplateParser(std::vector<Piece> pieces) : p_(std::move(pieces)) {}
    int depth_ = 0;

    Body parse_all() {
        std::string end;
        Body b = body({}, end);
        return b;
    }

private:
    // Parses nodes until a statement whose first word is in `ends`; returns that statement's parser in `end_parser`.
    Body body(const std::vector<std::string>& ends, std::string& end_word, std::unique_ptr<Parser>* end_parser = nullptr) {
        if (++depth_ > kMaxNesting)
            throw_bad_input("chat template: template limit 'depth' exceeded: blocks nested more than %d deep", kMaxNesting);
        struct Up {
            int* d;
            ~Up() { --*d; }
        } up{&depth_};
        Body out;
        while (i_ < p_.size()) {
            const Piece& pc = p_[i_++];
            if (pc.k == Piece::K::Text) {
                auto n = std::make_unique<Node>();
                n->k = Node::K::Text;
                n->text = pc.s;
                n->line = pc.line;
                out.push_back(std::move(n));
                continue;
            }
            auto P = std::make_unique<Parser>(tokenize_expr(pc.s, pc.line), pc.line);
            if (pc.k == Piece::K::Expr) {
                auto n = std::make_unique<Node>();
                n->k = Node::K::Output;
                n->line = pc.line;
                n->expr = P->expression();
                P->expect_end();
                out.push_back(std::move(n));
                continue;
            }
            const std::string word = P->expect_name();
            if (std::find(ends.begin(), ends.end(), word) != ends.end()) {
                end_word = word;
                if (end_parser) *end_parser = std::move(P);
                return out;
            }
            out.push_back(statement(word, *P, pc.line));
        }
        if (!ends.empty()) throw_bad_input("chat template: missing {%% %s %%} at the end of the template", ends.back().c_str());
        return out;
    }

    NodeP statement(const std::string& word, Parser& P, int line) {
        auto n = std::make_unique<Node>();
        n->line = line;
        std::string end;
        if (word == "if") {
            n->k = Node::K::If;
            ExprP cond = P.expression();
            P.expect_end();
            for (;;) {
                std::unique_ptr<Parser> ep;
                Body b = body({"elif", "else", "endif"}, end, &ep);
                n->branches.emplace_back(std::move(cond), std::move(b));
                if (end == "endif") break;
                if (end == "elif") {
                    cond = ep->expression();
                    ep->expect_end();
                    continue;
                }
                ep->expect_end();  // else
                Body eb = body({"endif"}, end);
                n->branches.emplace_back(nullptr, std::move(eb));
                break;
            }
            return n;
        }
        if (word == "for") {
            n->k = Node::K::For;
            n->targets = P.targets();
            if (!P.is_name("in")) P.err("expected 'in' in for loop");
            ++P.pos_;
            n->expr = P.or_expr();  // no conditional expression here: "if" filters the items
            if (P.is_name("if")) {
                ++P.pos_;
                n->cond = P.expression();
            }
            if (P.is_name("recursive")) P.err("recursive loops are not supported");
            P.expect_end();
            std::unique_ptr<Parser> ep;
            n->body = body({"else", "endfor"}, end, &ep);
            if (end == "else") {
                ep->expect_end();
                n->else_body = body({"endfor"}, end);
            }
            return n;
        }
        if (word == "set") {
            std::vector<std::string> names = P.targets();
            if (names.size() == 1 && P.is_op(".")) {
                ++P.pos_;
                n->attr = P.expect_name();
            }
            if (P.is_op("=")) {
                ++P.pos_;
                n->k = Node::K::Set;
                n->targets = std::move(names);
                ExprP v = P.expression();
                if (P.is_op(",")) {  // set a, b = 1, 2
                    ExprP tup = P.mk(Expr::K::Tuple);
                    tup->args.push_back(std::move(v));
                    while (P.is_op(",")) { ++P.pos_; tup->args.push_back(P.expression()); }
                    v = std::move(tup);
                }
                n->expr = std::move(v);
                P.expect_end();
                return n;
            }
            if (names.size() != 1 || !n->attr.empty()) P.err("block set takes one name");
            n->k = Node::K::SetBlock;
            n->targets = std::move(names);
            if (P.is_op("|")) {
                ExprP ph = P.mk(Expr::K::Const);
                n->filter = P.filters(std::move(ph));
            }
            P.expect_end();
            n->body = body({"endset"}, end);
            return n;
        }
        if (word == "macro") {
            n->k = Node::K::Macro;
            n->text = P.expect_name();
            P.expect_op("(");
            while (!P.is_op(")")) {
                std::string pn = P.expect_name();
                ExprP def;
                if (P.is_op("=")) { ++P.pos_; def = P.expression(); }
                n->params.emplace_back(std::move(pn), std::move(def));
                if (!P.is_op(",")) break;
                ++P.pos_;
            }
            P.expect_op(")");
            P.expect_end();
            n->body = body({"endmacro"}, end);
            return n;
        }
        if (word == "filter") {
            n->k = Node::K::FilterBlock;
            ExprP ph = P.mk(Expr::K::Const);
            --P.pos_;  // let filters() see a "|" in front of the name
            P.t_[P.pos_] = Token{Token::K::Op, "|"};
            n->filter = P.filters(std::move(ph));
            P.expect_end();
            n->body = body({"endfilter"}, end);
            return n;
        }
        if (word == "generation") {
            n->k = Node::K::Generation;
            P.expect_end();
            n->body = body({"endgeneration"}, end);
            return n;
        }
        if (word == "break" || word == "continue") {
            n->k = word == "break" ? Node::K::Break : Node::K::Continue;
            P.expect_end();
            return n;
        }
        P.err("unknown tag '" + word + "'");
    }

    std::vector<Piece> p_;
    size_t i_ = 0;
};

// ================================================================================================ evaluation
enum class Flow { Normal, Break, Continue };

struct Frame {
    std::unordered_map<std::string, Value> vars;
};

struct Interp {
    const Options* opt = nullptr;
    std::vector<std::shared_ptr<Frame>> frames;  // innermost last
    std::unordered_map<std::string, Value> globals;
    int depth = 0;

    Value lookup(const std::string& n) const {
        for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
            auto f = (*it)->vars.find(n);
            if (f != (*it)->vars.end()) return f->second;
        }
        auto g = globals.find(n);
        if (g != globals.end()) return g->second;
        return Value::undefined("'" + n + "' is undefined");
    }
    void assign(const std::string& n, Value v) { frames.back()->vars[n] = std::move(v); }

    Value eval(const Expr& e);
    Flow exec(const Body& b, std::string& out);
    Flow exec(const Node& n, std::string& out);
    Value call(const Value& f, std::vector<Value>& args, Kwargs& kw);
    Value filter(const std::string& name, Value v, std::vector<Value>& args, Kwargs& kw);
    Value filter_impl(const std::string& name, Value v, std::vector<Value>& args, Kwargs& kw);
    bool test(const std::string& name, const Value& v, std::vector<Value>& args);
    // a filter chain parsed on a placeholder (filter blocks, block set): applied to `input`
    Value apply_filters(const Expr& f, Value input) {
        if (f.k != Expr::K::Filter) return input;
        Value v = apply_filters(*f.args[0], std::move(input));
        std::vector<Value> args;
        for (size_t k = 1; k < f.args.size(); ++k) args.push_back(eval(*f.args[k]));
        Kwargs kw;
        for (const auto& [n, x] : f.kwargs) kw.emplace_back(n, eval(*x));
        return filter(f.name, std::move(v), args, kw);
    }
};

Value kwarg(const Kwargs& kw, const std::vector<Value>& args, size_t pos, const char* name, Value def = Value::undefined("")) {
    for (auto& [k, v] : kw)
        if (k == name) return v;
    if (pos < args.size()) return args[pos];
    return def;
}

std::vector<Value> iterate(const Value& v) {
    switch (v.t) {
        case Value::T::Undefined: return {};
        case Value::T::List: return *v.a;
        case Value::T::Dict: {
            std::vector<Value> keys;
            for (const auto& kv : v.o->items) keys.push_back(Value::str(kv.first));
            return keys;
        }
        case Value::T::Str: {
            std::vector<Value> chars;
            const std::u32string u = to_u32(v.s);
            charge_n(u.size(), sizeof(Value));
            for (char32_t c : u) chars.push_back(Value::str(from_u32(std::u32string(1, c))));
            return chars;
        }
        default: fail(std::string("TypeError: '") + type_name(v) + "' object is not iterable");
    }
}

int64_t to_int(const Value& v) {
    if (v.t == Value::T::Int) return v.i;
    if (v.t == Value::T::Bool) return v.b;
    if (v.t == Value::T::Float) return checked_int(v.f);
    if (v.is_undef()) fail_undefined(v);
    fail(std::string("TypeError: an integer is required, not '") + type_name(v) + "'");
}

std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right) {
    std::u32string u = to_u32(s);
    std::u32string set;
    const bool ws = chars.is_undef() || chars.t == Value::T::None;
    if (!ws) set = to_u32(to_str(chars));
    auto strip = [&](char32_t c) { return ws ? py_space(c) : set.find(c) != std::u32string::npos; };
    size_t b = 0, e = u.size();
    if (left)
        while (b < e && strip(u[b])) ++b;
    if (right)
        while (e > b && strip(u[e - 1])) --e;
    return from_u32(u.substr(b, e - b));
}

std::vector<std::string> py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
    {  // the parts it will make (each a string here, a Value once listed), before making them
        uint64_t parts = 1;
        if (sep.is_undef() || sep.t == Value::T::None) {
            bool in_word = false;
            parts = 0;
            for (char c : s) {
                const bool sp = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
                if (!sp && !in_word) ++parts;
                in_word = !sp;
            }
        } else if (sep.t == Value::T::Str && !sep.s.empty()) {
            for (size_t f = s.find(sep.s); f != std::string::npos; f = s.find(sep.s, f + sep.s.size())) ++parts;
        }
        if (maxsplit >= 0) parts = std::min<uint64_t>(parts, static_cast<uint64_t>(maxsplit) + 1);
        charge(s.size());
        charge_n(parts, sizeof(Value) + sizeof(std::string));
    }
    std::vector<std::string> out;
    if (sep.is_undef() || sep.t == Value::T::None) {  // runs of whitespace, no empty strings
        const std::u32string u = to_u32(s);
        size_t k = 0;
        while (k < u.size()) {
            while (k < u.size() && py_space(u[k])) ++k;
            if (k >= u.size()) break;
            if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
                size_t e = u.size();
                while (e > k && py_space(u[e - 1])) --e;
                out.push_back(from_u32(u.substr(k, e - k)));
                break;
            }
            size_t e = k;
            while (e < u.size() && !py_space(u[e])) ++e;
            out.push_back(from_u32(u.substr(k, e - k)));
            k = e;
        }
        return out;
    }
    const std::string d = to_str(sep);
    if (d.empty()) fail("ValueError: empty separator");
    size_t start = 0;
    for (;;) {
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) break;
        const size_t f = s.find(d, start);
        if (f == std::string::npos) break;
        out.push_back(s.substr(start, f - start));
        start = f + d.size();
    }
    out.push_back(s.substr(start));
    return out;
}

std::string py_replace(const std::string& s, const std::string& a, const std::string& b, int64_t count) {
    {  // what it will build, before building it
        uint64_t hits = 0;
        if (a.empty()) hits = to_u32(s).size() + 1;
        else
            for (size_t f = s.find(a); f != std::string::npos; f = s.find(a, f + a.size())) ++hits;
        if (count >= 0) hits = std::min<uint64_t>(hits, static_cast<uint64_t>(count));
        charge(s.size());
        charge_n(hits, b.size());
    }
    std::string out;
    size_t start = 0;
    int64_t n = 0;
    if (a.empty()) {  // Python inserts b between every character
        const std::u32string u = to_u32(s);
        for (size_t k = 0; k <= u.size(); ++k) {
            if (count < 0 || n < count) { out += b; ++n; }
            if (k < u.size()) append_utf8(out, u[k]);
        }
        return out;
    }
    for (;;) {
        const size_t f = s.find(a, start);
        if (f == std::string::npos || (count >= 0 && n >= count)) break;
        out += s.substr(start, f - start) + b;
        start = f + a.size();
        ++n;
    }
    return out + s.substr(start);
}

std::string py_title(const std::string& s, bool capitalize_only) {
    std::u32string u = to_u32(s);
    bool prev_cased = false;
    for (size_t k = 0; k < u.size(); ++k) {
        char32_t& c = u[k];
        const bool alpha = c < 0x80 && std::isalpha(static_cast<int>(c));
        if (capitalize_only) {
            if (c < 0x80) c = static_cast<char32_t>(k == 0 ? std::toupper(static_cast<int>(c)) : std::tolower(static_cast<int>(c)));
            continue;
        }
        if (alpha) c = static_cast<char32_t>(prev_cased ? std::tolower(static_cast<int>(c)) : std::toupper(static_cast<int>(c)));
        prev_cased = alpha;
    }
    return from_u32(u);
}

std::string ascii_case(std::string s, bool upper) {
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(upper ? std::toupper(c) : std::tolower(c));
    return s;
}

// Python's index normalisation for slices
Value slice(const Value& v, const Value& a, const Value& b, const Value& c) {
    const bool is_str = v.t == Value::T::Str;
    if (!is_str && (v.t != Value::T::List || v.gen)) {
        if (v.is_undef()) fail_undefined(v);
        fail(std::string("TypeError: '") + type_name(v) + "' object is not subscriptable");
    }
    std::u32string u;
    if (is_str) u = to_u32(v.s);
    const int64_t n = is_str ? static_cast<int64_t>(u.size()) : static_cast<int64_t>(v.a->size());
    const int64_t step = c.is_undef() || c.t == Value::T::None ? 1 : to_int(c);
    if (step == 0) fail("ValueError: slice step cannot be zero");
    auto norm = [&](const Value& x, int64_t def, bool is_start) {
        if (x.is_undef() || x.t == Value::T::None) return def;
        int64_t k = to_int(x);
        if (k < 0) k += n;
        if (step > 0) return std::clamp<int64_t>(k, 0, n);
        (void)is_start;
        return std::clamp<int64_t>(k, -1, n - 1);
    };
    const int64_t start = norm(a, step > 0 ? 0 : n - 1, true), stop = norm(b, step > 0 ? n : -1, false);
    if (is_str) {
        std::u32string out;
        for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(u[static_cast<size_t>(k)]);
        return Value::str(from_u32(out));
    }
    Array out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back((*v.a)[static_cast<size_t>(k)]);
    return Value::list(std::move(out));
}

Value get_item(const Value& v, const Value& key) {
    if (v.gen) fail("TypeError: 'generator' object is not subscriptable");
    switch (v.t) {
        case Value::T::List: {
            if (!key.is_num() || key.t == Value::T::Float) return Value::undefined("list indices must be integers");
            int64_t k = to_int(key);
            const int64_t n = static_cast<int64_t>(v.a->size());
            if (k < 0) k += n;
            if (k < 0 || k >= n) return Value::undefined("list object has no element " + to_str(key));
            return (*v.a)[static_cast<size_t>(k)];
        }
        case Value::T::Dict: {
            const Value* x = v.o->find(to_str(key));
            if (key.t == Value::T::Str && x) return *x;
            if (key.t != Value::T::Str) {  // non-string keys: compare by value (JSON objects only have string keys)
                for (const auto& [k, w] : v.o->items)
                    if (k == to_str(key)) return w;
            }
            return Value::undefined("'dict object' has no attribute '" + to_str(key) + "'");
        }
        case Value::T::Str: {
            if (!key.is_num()) return Value::undefined("string indices must be integers");
            const std::u32string u = to_u32(v.s);
            int64_t k = to_int(key);
            const int64_t n = static_cast<int64_t>(u.size());
            if (k < 0) k += n;
            if (k < 0 || k >= n) return Value::undefined("string index out of range");
            return Value::str(from_u32(std::u32string(1, u[static_cast<size_t>(k)])));
        }
        case Value::T::Undefined: fail_undefined(v);
        default: return Value::undefined("'" + std::string(type_name(v)) + " object' has no attribute '" + to_str(key) + "'");
    }
}

Value method(const Value& self, const std::string& name);

Value get_attr(const Value& v, const std::string& name) {
    if (v.is_undef()) fail_undefined(v);
    if (v.t == Value::T::Dict) {
        if (!v.o->is_namespace) {
            Value m = method(v, name);
            if (!m.is_undef()) return m;
        }
        if (const Value* x = v.o->find(name)) return *x;
        return Value::undefined("'" + std::string(v.o->is_namespace ? "Namespace" : "dict object") + "' has no attribute '" + name + "'");
    }
    if (v.t == Value::T::Str || v.t == Value::T::List) {
        Value m = method(v, name);
        if (!m.is_undef()) return m;
        return Value::undefined("'" + std::string(type_name(v)) + " object' has no attribute '" + name + "'");
    }
    return Value::undefined("'" + std::string(type_name(v)) + " object' has no attribute '" + name + "'");
}

Value str_list(const std::vector<std::string>& v) {
    Array a;
    for (const auto& s : v) a.push_back(Value::str(s));
    return Value::list(std::move(a));
}

Value method(const Value& self, const std::string& name) {
    using F = std::function<Value(Interp&, std::vector<Value>&, Kwargs&)>;
    auto bind = [&](F f) {
        Value m = make_func(name, std::move(f));
        if (self.t == Value::T::List || self.t == Value::T::Dict) m.fn->holds.push_back(self);
        return m;
    };
    if (self.t == Value::T::Str) {
        const std::string s = self.s;
        if (name == "strip" || name == "lstrip" || name == "rstrip")
            return bind([s, name](Interp&, std::vector<Value>& a, Kwargs& kw) {
                return Value::str(strip_chars(s, kwarg(kw, a, 0, "chars"), name != "rstrip", name != "lstrip"));
            });
        if (name == "split" || name == "rsplit")
            return bind([s](Interp&, std::vector<Value>& a, Kwargs& kw) {
                const Value ms = kwarg(kw, a, 1, "maxsplit");
                return str_list(py_split(s, kwarg(kw, a, 0, "sep"), ms.is_undef() ? -1 : to_int(ms)));
            });
        if (name == "startswith" || name == "endswith")
            return bind([s, name](Interp&, std::vector<Value>& a, Kwargs&) {
                if (a.empty()) fail("TypeError: " + name + "() takes at least 1 argument");
                std::vector<Value> cands = a[0].t == Value::T::List ? *a[0].a : std::vector<Value>{a[0]};
                for (const auto& c : cands) {
                    if (c.t != Value::T::Str) fail("TypeError: " + name + " first arg must be str or a tuple of str");
                    const std::string& p = c.s;
                    if (name == "startswith" ? s.rfind(p, 0) == 0 : (s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0))
                        return Value::boolean(true);
                }
                return Value::boolean(false);
            });
        if (name == "upper" || name == "lower")
            return bind([s, name](Interp&, std::vector<Value>&, Kwargs&) { return Value::str(ascii_case(s, name == "upper")); });
        if (name == "title" || name == "capitalize")
            return bind([s, name](Interp&, std::vector<Value>&, Kwargs&) { return Value::str(py_title(s, name == "capitalize")); });
        if (name == "replace")
            return bind([s](Interp&, std::vector<Value>& a, Kwargs& kw) {
                if (a.size() < 2) fail("TypeError: replace() takes at least 2 arguments");
                const Value c = kwarg(kw, a, 2, "count");
                return Value::str(py_replace(s, to_str(a[0]), to_str(a[1]), c.is_undef() ? -1 : to_int(c)));
            });
        if (name == "find" || name == "rfind" || name == "index" || name == "count")
            return bind([s, name](Interp&, std::vector<Value>& a, Kwargs&) {
                if (a.empty()) fail("TypeError: " + name + "() takes at least 1 argument");
                const std::string sub = to_str(a[0]);
                if (name == "count") {
                    if (sub.empty()) return Value::integer(static_cast<int64_t>(u8_length(s)) + 1);
                    int64_t n = 0;
                    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
                    return Value::integer(n);
                }
                const size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
                if (p == std::string::npos) {
                    if (name == "index") fail("ValueError: substring not found");
                    return Value::integer(-1);
                }
                return Value::integer(static_cast<int64_t>(u8_length(s.substr(0, p))));
            });
        if (name == "join")
            return bind([s](Interp&, std::vector<Value>& a, Kwargs&) {
                std::string out;
                bool first = true;
                for (const Value& x : iterate(a.empty() ? Value() : a[0])) {
                    if (x.t != Value::T::Str) fail("TypeError: sequence item: expected str instance");
                    out += (first ? "" : s) + x.s;
                    first = false;
                }
                return Value::str(out);
            });
        if (name == "splitlines")
            return bind([s](Interp&, std::vector<Value>&, Kwargs&) {
                charge_n(static_cast<uint64_t>(std::count(s.begin(), s.end(), '\n') + std::count(s.begin(), s.end(), '\r') + 1), sizeof(Value));
                std::vector<std::string> lines;
                size_t start = 0;
                for (size_t k = 0; k < s.size(); ++k)
                    if (s[k] == '\n' || s[k] == '\r') {
                        lines.push_back(s.substr(start, k - start));
                        if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
                        start = k + 1;
                    }
                if (start < s.size()) lines.push_back(s.substr(start));
                return str_list(lines);
            });
        if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isupper" || name == "islower")
            return bind([s, name](Interp&, std::vector<Value>&, Kwargs&) {
                if (s.empty()) return Value::boolean(false);
                bool any_cased = false;
                for (char32_t c : to_u32(s)) {
                    const int ci = c < 0x80 ? static_cast<int>(c) : 0;
                    if (name == "isdigit" && !(ci && std::isdigit(ci))) return Value::boolean(false);
                    if (name == "isalpha" && !(ci && std::isalpha(ci))) return Value::boolean(false);
                    if (name == "isspace" && !py_space(c)) return Value::boolean(false);
                    if (name == "isupper" && ci && std::islower(ci)) return Value::boolean(false);
                    if (name == "islower" && ci && std::isupper(ci)) return Value::boolean(false);
                    any_cased |= ci && std::isalpha(ci);
                }
                return Value::boolean(name == "isupper" || name == "islower" ? any_cased : true);
            });
        return Value::undefined("");
    }
    if (self.t == Value::T::Dict) {
        const Value d = self;
        if (name == "items")
            return bind([d](Interp&, std::vector<Value>&, Kwargs&) {
                Array out;
                for (const auto& [k, v] : d.o->items) out.push_back(Value::list({Value::str(k), v}));
                return Value::list(std::move(out));
            });
        if (name == "keys")
            return bind([d](Interp&, std::vector<Value>&, Kwargs&) {
                Array out;
                for (const auto& kv : d.o->items) out.push_back(Value::str(kv.first));
                return Value::list(std::move(out));
            });
        if (name == "values")
            return bind([d](Interp&, std::vector<Value>&, Kwargs&) {
                Array out;
                for (const auto& kv : d.o->items) out.push_back(kv.second);
                return Value::list(std::move(out));
            });
        if (name == "get")
            return bind([d](Interp&, std::vector<Value>& a, Kwargs& kw) {
                if (a.empty()) fail("TypeError: get expected at least 1 argument");
                const Value* x = d.o->find(to_str(a[0]));
                if (x) return *x;
                const Value def = kwarg(kw, a, 1, "default");
                return def.is_undef() ? Value::none() : def;
            });
        return Value::undefined("");
    }
    if (self.t == Value::T::List) {
        const Value l = self;
        if (name == "index" || name == "count")
            return bind([l, name](Interp&, std::vector<Value>& a, Kwargs&) {
                if (a.empty()) fail("TypeError: " + name + "() takes exactly one argument");
                int64_t n = 0;
                for (size_t k = 0; k < l.a->size(); ++k)
                    if (equal((*l.a)[k], a[0])) {
                        if (name == "index") return Value::integer(static_cast<int64_t>(k));
                        ++n;
                    }
                if (name == "index") fail("ValueError: value is not in list");
                return Value::integer(n);
            });
        if (name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" || name == "clear")
            return bind([name](Interp&, std::vector<Value>&, Kwargs&) -> Value {
                fail("SecurityError: access to attribute '" + name + "' of 'list' object is unsafe");  // immutable sandbox
            });
    }
    return Value::undefined("");
}

Value arith(const std::string& op, const Value& x, const Value& y) {
    if (op == "~") {
        if (x.t == Value::T::Str && y.t == Value::T::Str) {  // the size before any copy
            charge(x.s.size() + y.s.size());
            return Value::str(x.s + y.s);
        }
        std::string a = to_str(x), b = to_str(y);
        charge(a.size() + b.size());
        return Value::str(a + b);
    }
    if (x.is_undef()) fail_undefined(x);
    if (y.is_undef()) fail_undefined(y);
    auto type_err = [&]() -> Value {
        fail("TypeError: unsupported operand type(s) for " + op + ": '" + type_name(x) + "' and '" + type_name(y) + "'");
    };
    if (op == "+") {
        if (x.t == Value::T::Str && y.t == Value::T::Str) {
            charge(x.s.size() + y.s.size());
            return Value::str(x.s + y.s);
        }
        if (x.t == Value::T::List && y.t == Value::T::List && !x.gen && !y.gen) {
            charge(value_bytes(x) + value_bytes(y));
            Array a = *x.a;
            a.insert(a.end(), y.a->begin(), y.a->end());
            return Value::list(std::move(a));
        }
        if (x.t == Value::T::Str || y.t == Value::T::Str) {
            fail(std::string("TypeError: can only concatenate str (not \"") + type_name(x.t == Value::T::Str ? y : x) + "\") to str");
        }
    }
    if (op == "*") {
        const Value* seq = x.t == Value::T::Str || x.t == Value::T::List ? &x : y.t == Value::T::Str || y.t == Value::T::List ? &y : nullptr;
        const Value* cnt = seq == &x ? &y : &x;
        if (seq && (cnt->t == Value::T::Int || cnt->t == Value::T::Bool)) {
            const int64_t n = std::max<int64_t>(0, to_int(*cnt));
            charge_n(static_cast<uint64_t>(n), seq->t == Value::T::Str ? seq->s.size() : value_bytes(*seq));  // before building it
            if (seq->t == Value::T::Str) {
                std::string out;
                out.reserve(seq->s.size() * static_cast<size_t>(n));
                for (int64_t k = 0; k < n; ++k) out += seq->s;
                return Value::str(out);
            }
            Array a;
            for (int64_t k = 0; k < n; ++k) a.insert(a.end(), seq->a->begin(), seq->a->end());
            return Value::list(std::move(a));
        }
    }
    if (op == "%" && x.t == Value::T::Str) {  // printf-style formatting: %s %d %i %f %r %%
        std::vector<Value> vals = y.t == Value::T::List ? *y.a : std::vector<Value>{y};
        std::string out;
        size_t vi = 0;
        for (size_t k = 0; k < x.s.size(); ++k) {
            if (x.s[k] != '%' || k + 1 >= x.s.size()) { out += x.s[k]; continue; }
            const char c = x.s[++k];
            if (c == '%') { out += '%'; continue; }
            if (vi >= vals.size()) fail("TypeError: not enough arguments for format string");
            const Value& a = vals[vi++];
            if (c == 's') out += to_str(a);
            else if (c == 'r') out += repr(a);
            else if (c == 'd' || c == 'i') out += std::to_string(to_int(a));
            else if (c == 'f') { char b[64]; std::snprintf(b, sizeof b, "%f", a.num()); out += b; }
            else fail(std::string("ValueError: unsupported format character '") + c + "'");
            if (out.size() > (size_t{1} << 20)) charge(out.size());
        }
        charge(out.size());
        return Value::str(out);
    }
    if (!x.is_num() || !y.is_num()) return type_err();
    const bool ints = x.t != Value::T::Float && y.t != Value::T::Float;
    const int64_t a = ints ? to_int(x) : 0, b = ints ? to_int(y) : 0;
    const double fa = x.num(), fb = y.num();
    int64_t r = 0;
    if (op == "+" || op == "-" || op == "*") {
        if (!ints) return Value::number(op == "+" ? fa + fb : op == "-" ? fa - fb : fa * fb);
        const bool over = op == "+" ? __builtin_add_overflow(a, b, &r) : op == "-" ? __builtin_sub_overflow(a, b, &r) : __builtin_mul_overflow(a, b, &r);
        if (over) int_overflow(op.c_str());
        return Value::integer(r);
    }
    if (op == "/") {
        if (fb == 0) fail("ZeroDivisionError: division by zero");
        return Value::number(fa / fb);
    }
    if (op == "//" || op == "%") {
        if (fb == 0) fail("ZeroDivisionError: integer division or modulo by zero");
        if (ints) {
            if (a == INT64_MIN && b == -1) int_overflow(op.c_str());
            int64_t q = a / b;
            r = a % b;
            if (r != 0 && ((r < 0) != (b < 0))) { --q; r += b; }
            return Value::integer(op == "//" ? q : r);
        }
        const double q = std::floor(fa / fb);
        return Value::number(op == "//" ? q : fa - q * fb);
    }
    if (op == "**") {
        if (ints && b >= 0) {
            if (a == 0 || a == 1) return Value::integer(b == 0 ? 1 : a);
            if (a == -1) return Value::integer(b % 2 ? -1 : 1);
            int64_t p = 1;  // |a| ≥ 2: at most 63 multiplications before it overflows
            for (int64_t k = 0; k < b; ++k)
                if (__builtin_mul_overflow(p, a, &p)) int_overflow("**");
            return Value::integer(p);
        }
        return Value::number(std::pow(fa, fb));
    }
    return type_err();
}

bool contains(const Value& container, const Value& item) {
    switch (container.t) {
        case Value::T::Str:
            if (item.t != Value::T::Str) fail(std::string("TypeError: 'in <string>' requires string as left operand, not ") + type_name(item));
            return container.s.find(item.s) != std::string::npos;
        case Value::T::List:
            for (const auto& x : *container.a)
                if (equal(x, item)) return true;
            return false;
        case Value::T::Dict: return container.o->find(to_str(item)) != nullptr && item.t == Value::T::Str;
        case Value::T::Undefined: return false;  // Undefined iterates as empty
        default: fail(std::string("TypeError: argument of type '") + type_name(container) + "' is not iterable");
    }
}

Value Interp::eval(const Expr& e) {
    switch (e.k) {
        case Expr::K::Const: return e.value;
        case Expr::K::Name: return lookup(e.name);
        case Expr::K::List:
        case Expr::K::Tuple: {
            Array a;
            for (const auto& x : e.args) a.push_back(eval(*x));
            return Value::list(std::move(a));
        }
        case Expr::K::Dict: {
            Value d = Value::dict();
            for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
                const Value key = eval(*e.args[k]);
                d.o->set(to_str(key), eval(*e.args[k + 1]));
            }
            return d;
        }
        case Expr::K::Attr: return get_attr(eval(*e.args[0]), e.name);
        case Expr::K::Item: {
            const Value v = eval(*e.args[0]);
            const Value key = eval(*e.args[1]);
            Value r = get_item(v, key);
            if (r.is_undef() && key.t == Value::T::Str && v.t != Value::T::Dict) return get_attr(v, key.s);
            return r;
        }
        case Expr::K::Slice: {
            const Value v = eval(*e.args[0]);
            Value parts[3];
            for (int k = 0; k < 3; ++k)
                if (e.has[k]) parts[k] = eval(*e.args[static_cast<size_t>(k) + 1]);
            return slice(v, parts[0], parts[1], parts[2]);
        }
        case Expr::K::Call: {
            const Value f = eval(*e.args[0]);
            std::vector<Value> args;
            for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k]));
            Kwargs kw;
            for (const auto& [n, x] : e.kwargs) kw.emplace_back(n, eval(*x));
            return call(f, args, kw);
        }
        case Expr::K::Filter: {
            Value v = eval(*e.args[0]);
            std::vector<Value> args;
            for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k]));
            Kwargs kw;
            for (const auto& [n, x] : e.kwargs) kw.emplace_back(n, eval(*x));
            return filter(e.name, std::move(v), args, kw);
        }
        case Expr::K::Test: {
            const Value v = eval(*e.args[0]);
            std::vector<Value> args;
            for (size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k]));
            return Value::boolean(test(e.name, v, args) != e.negated);
        }
        case Expr::K::Unary: {
            const Value v = eval(*e.args[0]);
            if (v.is_undef()) fail_undefined(v);
            if (!v.is_num()) fail(std::string("TypeError: bad operand type for unary ") + e.name + ": '" + type_name(v) + "'");
            if (e.name == "+") return v.t == Value::T::Bool ? Value::integer(v.b) : v;
            if (v.t == Value::T::Float) return Value::number(-v.f);
            const int64_t x = to_int(v);
            if (x == INT64_MIN) int_overflow("-");
            return Value::integer(-x);
        }
        case Expr::K::Binary: return arith(e.name, eval(*e.args[0]), eval(*e.args[1]));
        case Expr::K::And: {
            Value a = eval(*e.args[0]);
            return truthy(a) ? eval(*e.args[1]) : a;
        }
        case Expr::K::Or: {
            Value a = eval(*e.args[0]);
            return truthy(a) ? a : eval(*e.args[1]);
        }
        case Expr::K::Not: return Value::boolean(!truthy(eval(*e.args[0])));
        case Expr::K::Cond:
            if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
            if (e.args.size() > 2) return eval(*e.args[2]);
            return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
        case Expr::K::Compare: {
            Value left = eval(*e.args[0]);
            for (size_t k = 0; k < e.ops.size(); ++k) {
                Value right = eval(*e.args[k + 1]);
                const std::string& op = e.ops[k];
                bool r;
                if (op == "==") r = equal(left, right);
                else if (op == "!=") r = !equal(left, right);
                else if (op == "in") r = contains(right, left);
                else if (op == "not in") r = !contains(right, left);
                else {
                    const int c = compare(left, right, op.c_str());
                    r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
                }
                if (!r) return Value::boolean(false);
                left = std::move(right);
            }
            return Value::boolean(true);
        }
    }
    return Value();
}

Value Interp::call(const Value& f, std::vector<Value>& args, Kwargs& kw) {
    if (f.is_undef()) fail_undefined(f);
    if (f.t != Value::T::Func) fail(std::string("TypeError: '") + type_name(f) + "' object is not callable");
    return charged(f.fn->call(*this, args, kw));
}

bool Interp::test(const std::string& name, const Value& v, std::vector<Value>& args) {
    auto arg = [&](size_t k) -> const Value& {
        if (k >= args.size()) fail("TypeError: test '" + name + "' needs an argument");
        return args[k];
    };
    if (name == "defined") return !v.is_undef();
    if (name == "undefined") return v.is_undef();
    if (name == "none") return v.t == Value::T::None;
    if (name == "boolean") return v.t == Value::T::Bool;
    if (name == "true") return v.t == Value::T::Bool && v.b;
    if (name == "false") return v.t == Value::T::Bool && !v.b;
    if (name == "integer") return v.t == Value::T::Int;
    if (name == "float") return v.t == Value::T::Float;
    if (name == "number") return v.is_num();
    if (name == "string") return v.t == Value::T::Str;
    if (name == "mapping") return v.t == Value::T::Dict;
    if (name == "sequence") return v.t == Value::T::Str || v.t == Value::T::List || v.t == Value::T::Dict;
    if (name == "iterable") return v.t == Value::T::Str || v.t == Value::T::List || v.t == Value::T::Dict || v.is_undef();
    if (name == "callable") return v.t == Value::T::Func;
    if (name == "odd") return to_int(v) % 2 != 0;
    if (name == "even") return to_int(v) % 2 == 0;
    if (name == "divisibleby") return to_int(arg(0)) != 0 && to_int(v) % to_int(arg(0)) == 0;
    if (name == "eq" || name == "equalto" || name == "==") return equal(v, arg(0));
    if (name == "ne" || name == "!=") return !equal(v, arg(0));
    if (name == "lt" || name == "lessthan" || name == "<") return compare(v, arg(0), "<") < 0;
    if (name == "le" || name == "<=") return compare(v, arg(0), "<=") <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, arg(0), ">") > 0;
    if (name == "ge" || name == ">=") return compare(v, arg(0), ">=") >= 0;
    if (name == "in") return contains(arg(0), v);
    if (name == "sameas") return equal(v, arg(0)) && v.t == arg(0).t;
    if (name == "lower") return v.t == Value::T::Str && ascii_case(v.s, false) == v.s;
    if (name == "upper") return v.t == Value::T::Str && ascii_case(v.s, true) == v.s;
    fail("TemplateRuntimeError: no test named '" + name + "'");
}

Value attribute_of(const Value& v, const std::string& path) {  // "a.b" attribute paths of map/selectattr/sort
    Value cur = v;
    size_t start = 0;
    for (;;) {
        const size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        // a part of digits indexes a list (Jinja's make_attrgetter: int(part)); one past int64 is out of any list
        const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        int64_t index = 0;
        const bool fits = digits && std::from_chars(part.data(), part.data() + part.size(), index).ec == std::errc();
        Value next = cur.t == Value::T::Dict ? get_item(cur, Value::str(part))
                     : cur.t == Value::T::List && digits ? (fits ? get_item(cur, Value::integer(index)) : Value::undefined("list index out of range"))
                     : cur.is_undef() ? cur : get_attr(cur, part);
        cur = next;
        if (dot == std::string::npos) return cur;
        start = dot + 1;
    }
}

Value Interp::filter(const std::string& name, Value v, std::vector<Value>& args, Kwargs& kw) {
    return charged(filter_impl(name, std::move(v), args, kw));
}

Value Interp::filter_impl(const std::string& name, Value v, std::vector<Value>& args, Kwargs& kw) {
    auto need_str = [&]() -> std::string {
        if (v.is_undef()) return "";
        return to_str(v);
    };
    if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
        if (name == "safe") return v;
        std::string out;
        for (char c : to_str(v)) {
            switch (c) {
                case '&': out += "&amp;"; break;
                case '<': out += "&lt;"; break;
                case '>': out += "&gt;"; break;
                case '"': out += "&#34;"; break;
                case '\'': out += "&#39;"; break;
                default: out += c;
            }
        }
        return Value::str(out);
    }
    if (name == "string") return Value::str(to_str(v));
    if (name == "tojson") {
        // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) → json.dumps
        JsonStyle st;
        const Value ind = kwarg(kw, std::vector<Value>{}, 0, "indent"), seps = kwarg(kw, std::vector<Value>{}, 0, "separators");
        for (size_t k = 0; k < args.size(); ++k)  // positional: ensure_ascii, indent, separators, sort_keys
            if (k == 0 && truthy(args[0])) fail("NotImplementedError: tojson(ensure_ascii=True) is not supported");
        const Value ind2 = ind.is_undef() && args.size() > 1 ? args[1] : ind;
        if (!ind2.is_undef() && ind2.t != Value::T::None) st.indent = static_cast<int>(std::clamp<int64_t>(to_int(ind2), -1, int64_t{1} << 30));
        const Value seps2 = seps.is_undef() && args.size() > 2 ? args[2] : seps;
        if (seps2.t == Value::T::List && seps2.a->size() == 2) {
            st.item_sep = to_str((*seps2.a)[0]);
            st.key_sep = to_str((*seps2.a)[1]);
        }
        st.sort_keys = truthy(kwarg(kw, args, 3, "sort_keys", Value::boolean(false)));
        for (const auto& [k, x] : kw)
            if (k == "ensure_ascii" && truthy(x)) fail("NotImplementedError: tojson(ensure_ascii=True) is not supported");
        std::string out;
        dump_json(out, v, st, 0);
        return Value::str(out);
    }
    if (name == "length" || name == "count") {
        if (v.t == Value::T::Str) return Value::integer(static_cast<int64_t>(u8_length(v.s)));
        if (v.t == Value::T::List && v.gen) fail("TypeError: object of type 'generator' has no len()");
        if (v.t == Value::T::List) return Value::integer(static_cast<int64_t>(v.a->size()));
        if (v.t == Value::T::Dict) return Value::integer(static_cast<int64_t>(v.o->items.size()));
        if (v.is_undef()) return Value::integer(0);
        fail(std::string("TypeError: object of type '") + type_name(v) + "' has no len()");
    }
    if (name == "trim") return Value::str(strip_chars(need_str(), kwarg(kw, args, 0, "chars"), true, true));
    if (name == "lower" || name == "upper") return Value::str(ascii_case(need_str(), name == "upper"));
    if (name == "capitalize" || name == "title") return Value::str(py_title(need_str(), name == "capitalize"));
    if (name == "replace") {
        if (args.size() < 2) fail("TypeError: replace filter needs 2 arguments");
        const Value c = kwarg(kw, args, 2, "count");
        return Value::str(py_replace(need_str(), to_str(args[0]), to_str(args[1]), c.is_undef() || c.t == Value::T::None ? -1 : to_int(c)));
    }
    if (name == "default" || name == "d") {
        const Value def = kwarg(kw, args, 0, "default_value", Value::str(""));
        const bool boolean = truthy(kwarg(kw, args, 1, "boolean", Value::boolean(false)));
        if (v.is_undef() || (boolean && !truthy(v))) return def;
        return v;
    }
    if (name == "items") {
        if (v.is_undef()) return Value::list();
        if (v.t != Value::T::Dict) fail("TypeError: can only get item pairs from a mapping");
        Array out;
        for (const auto& [k, x] : v.o->items) out.push_back(Value::list({Value::str(k), x}));
        return Value::list(std::move(out));
    }
    if (name == "list") return Value::list(iterate(v));
    if (name == "first" || name == "last") {
        const std::vector<Value> items = iterate(v);
        if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
        return name == "first" ? items.front() : items.back();
    }
    if (name == "reverse") {
        if (v.t == Value::T::Str) {
            std::u32string u = to_u32(v.s);
            std::reverse(u.begin(), u.end());
            return Value::str(from_u32(u));
        }
        std::vector<Value> items = iterate(v);
        std::reverse(items.begin(), items.end());
        return Value::list(std::move(items));
    }
    if (name == "join") {
        const std::string sep = to_str(kwarg(kw, args, 0, "d", Value::str("")));
        const Value attr = kwarg(kw, args, 1, "attribute");
        std::string out;
        bool first = true;
        for (const Value& x : iterate(v)) {
            out += (first ? "" : sep) + to_str(attr.is_undef() ? x : attribute_of(x, to_str(attr)));
            first = false;
        }
        return Value::str(out);
    }
    if (name == "int") {
        if (v.t == Value::T::Str) {
            try { return Value::integer(std::stoll(strip_chars(v.s, Value(), true, true))); } catch (...) {}
            double d = 0;
            bool ok = false;
            try { d = std::stod(v.s); ok = true; } catch (...) {}
            if (ok) return Value::integer(checked_int(d));
            return kwarg(kw, args, 0, "default", Value::integer(0));
        }
        if (v.is_num()) return Value::integer(to_int(v));
        return kwarg(kw, args, 0, "default", Value::integer(0));
    }
    if (name == "float") {
        if (v.t == Value::T::Str) {
            try { return Value::number(std::stod(v.s)); } catch (...) {}
            return kwarg(kw, args, 0, "default", Value::number(0));
        }
        if (v.is_num()) return Value::number(v.num());
        return kwarg(kw, args, 0, "default", Value::number(0));
    }
    if (name == "abs") {
        if (v.t == Value::T::Float) return Value::number(std::fabs(v.f));
        const int64_t x = to_int(v);
        if (x == INT64_MIN) int_overflow("abs");
        return Value::integer(std::llabs(x));
    }
    if (name == "round") {
        const int64_t prec = to_int(kwarg(kw, args, 0, "precision", Value::integer(0)));
        const std::string method = to_str(kwarg(kw, args, 1, "method", Value::str("common")));
        const double m = std::pow(10.0, static_cast<double>(prec)), x = v.num() * m;
        const double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
        return Value::number(r / m);
    }
    if (name == "indent") {
        const Value w = kwarg(kw, args, 0, "width", Value::integer(4));
        const int64_t width = w.t == Value::T::Str ? 0 : std::max<int64_t>(0, to_int(w));
        charge(static_cast<uint64_t>(width));
        const std::string pad = w.t == Value::T::Str ? w.s : std::string(static_cast<size_t>(width), ' ');
        const bool first = truthy(kwarg(kw, args, 1, "first", Value::boolean(false)));
        const bool blank = truthy(kwarg(kw, args, 2, "blank", Value::boolean(false)));
        std::string s = need_str();
        charge(s.size());
        charge_n(static_cast<uint64_t>(std::count(s.begin(), s.end(), '\n')) + 1, pad.size() + sizeof(std::string));
        std::vector<std::string> lines;
        size_t start = 0;
        for (size_t k = 0; k <= s.size(); ++k)
            if (k == s.size() || s[k] == '\n') {
                lines.push_back(s.substr(start, k - start));
                start = k + 1;
            }
        std::string out;
        for (size_t k = 0; k < lines.size(); ++k) {
            if (k) out += '\n';
            const bool do_pad = (k > 0 || first) && (blank || !strip_chars(lines[k], Value(), true, true).empty());
            out += (do_pad ? pad : "") + lines[k];
        }
        return Value::str(out);
    }
    if (name == "unique") {
        Array out;
        for (const Value& x : iterate(v)) {
            bool seen = false;
            for (const Value& y : out)
                if (equal(x.t == Value::T::Str ? Value::str(ascii_case(x.s, false)) : x, y.t == Value::T::Str ? Value::str(ascii_case(y.s, false)) : y)) seen = true;
            if (!seen) out.push_back(x);
        }
        return Value::list(std::move(out));
    }
    if ((name == "map" || name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") && !truthy(v))
        return generator({});  // Jinja checks "if seq:" before iterating: None and empty inputs give nothing
    if (name == "map") {
        const Value attr = kwarg(kw, std::vector<Value>{}, 0, "attribute");
        Array out;
        if (!attr.is_undef()) {
            const Value def = kwarg(kw, std::vector<Value>{}, 0, "default");
            for (const Value& x : iterate(v)) {
                Value y = attribute_of(x, to_str(attr));
                out.push_back(y.is_undef() && !def.is_undef() ? def : y);
            }
            return generator(std::move(out));
        }
        if (args.empty()) fail("TypeError: map filter needs a filter name or attribute=");
        const std::string fname = to_str(args[0]);
        std::vector<Value> rest(args.begin() + 1, args.end());
        for (const Value& x : iterate(v)) {
            std::vector<Value> a = rest;
            Kwargs k2;
            out.push_back(filter(fname, x, a, k2));
        }
        return generator(std::move(out));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
        const bool by_attr = name == "selectattr" || name == "rejectattr";
        const bool keep = name == "select" || name == "selectattr";
        size_t k = 0;
        std::string attr;
        if (by_attr) {
            if (args.empty()) fail("TypeError: " + name + " needs an attribute");
            attr = to_str(args[k++]);
        }
        std::string tname;
        if (k < args.size()) tname = to_str(args[k++]);
        std::vector<Value> targs(args.begin() + static_cast<long>(k), args.end());
        Array out;
        for (const Value& x : iterate(v)) {
            const Value y = by_attr ? attribute_of(x, attr) : x;
            const bool ok = tname.empty() ? truthy(y) : test(tname, y, targs);
            if (ok == keep) out.push_back(x);
        }
        return generator(std::move(out));
    }
    if (name == "sort" || name == "dictsort") {
        std::vector<Value> items;
        if (name == "dictsort") {
            if (v.t != Value::T::Dict) fail("TypeError: dictsort needs a mapping");
            for (const auto& [k, x] : v.o->items) items.push_back(Value::list({Value::str(k), x}));
        } else {
            items = iterate(v);
        }
        const std::vector<Value> none;
        const std::vector<Value>& pos = name == "sort" ? args : none;
        const bool rev = truthy(kwarg(kw, pos, 0, "reverse", Value::boolean(false)));
        const bool cs = truthy(kwarg(kw, pos, 1, "case_sensitive", Value::boolean(false)));
        const Value attr = kwarg(kw, pos, 2, "attribute");
        auto key = [&](const Value& x) {
            Value k = name == "dictsort" ? (*x.a)[0] : attr.is_undef() ? x : attribute_of(x, to_str(attr));
            if (!cs && k.t == Value::T::Str) k = Value::str(ascii_case(k.s, false));
            return k;
        };
        std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
            const int c = compare(key(a), key(b), "<");
            return rev ? c > 0 : c < 0;
        });
        return Value::list(std::move(items));
    }
    if (name == "min" || name == "max" || name == "sum") {
        const std::vector<Value> items = iterate(v);
        if (name == "sum") {
            Value acc = kwarg(kw, args, 1, "start", Value::integer(0));
            const Value attr = kwarg(kw, args, 0, "attribute");
            for (const Value& x : items) acc = arith("+", acc, attr.is_undef() ? x : attribute_of(x, to_str(attr)));
            return acc;
        }
        if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
        Value best = items[0];
        for (const Value& x : items) {
            const int c = compare(x, best, "<");
            if (name == "min" ? c < 0 : c > 0) best = x;
        }
        return best;
    }
    if (name == "batch") {
        const int64_t n = to_int(kwarg(kw, args, 0, "linecount"));
        Array out, cur;
        for (const Value& x : iterate(v)) {
            cur.push_back(x);
            if (static_cast<int64_t>(cur.size()) == n) { out.push_back(Value::list(std::move(cur))); cur.clear(); }
        }
        if (!cur.empty()) out.push_back(Value::list(std::move(cur)));
        return Value::list(std::move(out));
    }
    if (name == "wordcount") return Value::integer(static_cast<int64_t>(py_split(need_str(), Value(), -1).size()));
    if (name == "attr") return get_attr(v, to_str(kwarg(kw, args, 0, "name")));
    if (name == "truncate") {
        const int64_t len = to_int(kwarg(kw, args, 0, "length", Value::integer(255)));
        const std::u32string u = to_u32(need_str());
        if (static_cast<int64_t>(u.size()) <= len) return Value::str(need_str());
        return Value::str(from_u32(u.substr(0, static_cast<size_t>(std::max<int64_t>(0, len - 3)))) + "...");
    }
    fail("TemplateRuntimeError: no filter named '" + name + "'");
}

Flow Interp::exec(const Body& b, std::string& out) {
    for (const auto& n : b) {
        const Flow f = exec(*n, out);
        if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
}

Flow Interp::exec(const Node& n, std::string& out) {
    try {
        switch (n.k) {
            case Node::K::Text:
                out += n.text;
                check_output(out);
                return Flow::Normal;
            case Node::K::Output: {
                const Value v = eval(*n.expr);
                out += to_str(v);
                check_output(out);
                return Flow::Normal;
            }
            case Node::K::If:
                for (const auto& [cond, body] : n.branches)
                    if (!cond || truthy(eval(*cond))) return exec(body, out);
                return Flow::Normal;
            case Node::K::For: {
                // `for x in range(…)` runs without building the list: a loop inside a loop holds nothing
                RangeArgs lazy;
                bool is_range = false;
                if (!n.cond && n.expr->k == Expr::K::Call && n.expr->kwargs.empty() && n.expr->args[0]->k == Expr::K::Name &&
                    n.expr->args[0]->name == "range") {
                    const Value f = eval(*n.expr->args[0]);
                    const auto g = globals.find("range");
                    if (f.t == Value::T::Func && g != globals.end() && f.fn == g->second.fn) {
                        std::vector<Value> args;
                        for (size_t k = 1; k < n.expr->args.size(); ++k) args.push_back(eval(*n.expr->args[k]));
                        lazy = range_args(args);
                        is_range = true;
                    }
                }
                std::vector<Value> items;
                if (!is_range) items = iterate(eval(*n.expr));
                if (n.cond) {  // "for x in xs if cond": filter first, so loop.* count the kept items
                    std::vector<Value> kept;
                    frames.push_back(std::make_shared<Frame>());
                    for (auto& x : items) {
                        tick();
                        if (n.targets.size() == 1) assign(n.targets[0], x);
                        else {
                            const std::vector<Value> parts = iterate(x);
                            for (size_t k = 0; k < n.targets.size() && k < parts.size(); ++k) assign(n.targets[k], parts[k]);
                        }
                        if (truthy(eval(*n.cond))) kept.push_back(x);
                    }
                    frames.pop_back();
                    items = std::move(kept);
                }
                const int64_t len = is_range ? lazy.count : static_cast<int64_t>(items.size());
                if (len == 0) return exec(n.else_body, out);
                auto item = [&](int64_t k) { return is_range ? Value::integer(lazy.at(k)) : items[static_cast<size_t>(k)]; };
                frames.push_back(std::make_shared<Frame>());
                struct Pop {
                    Interp* in;
                    ~Pop() { in->frames.pop_back(); }
                } pop{this};
                for (int64_t k = 0; k < len; ++k) {
                    tick();
                    const Value x = item(k);
                    if (n.targets.size() == 1) assign(n.targets[0], x);
                    else {
                        const std::vector<Value> parts = iterate(x);
                        if (parts.size() != n.targets.size())
                            fail("ValueError: cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(n.targets.size()));
                        for (size_t q = 0; q < parts.size(); ++q) assign(n.targets[q], parts[q]);
                    }
                    Value loop = Value::dict();
                    loop.o->set("index", Value::integer(k + 1));
                    loop.o->set("index0", Value::integer(k));
                    loop.o->set("revindex", Value::integer(len - k));
                    loop.o->set("revindex0", Value::integer(len - k - 1));
                    loop.o->set("first", Value::boolean(k == 0));
                    loop.o->set("last", Value::boolean(k == len - 1));
                    loop.o->set("length", Value::integer(len));
                    loop.o->set("depth", Value::integer(1));
                    loop.o->set("depth0", Value::integer(0));
                    loop.o->set("previtem", k > 0 ? item(k - 1) : Value::undefined("there is no previous item"));
                    loop.o->set("nextitem", k + 1 < len ? item(k + 1) : Value::undefined("there is no next item"));
                    loop.o->set("cycle", make_func("cycle", [k](Interp&, std::vector<Value>& a, Kwargs&) {
                        if (a.empty()) fail("TypeError: no items for cycling given");
                        return a[static_cast<size_t>(k) % a.size()];
                    }));
                    assign("loop", loop);
                    const Flow f = exec(n.body, out);
                    if (f == Flow::Break) break;
                }
                return Flow::Normal;
            }
            case Node::K::Set: {
                Value v = eval(*n.expr);
                if (!n.attr.empty()) {
                    Value ns = lookup(n.targets[0]);
                    if (ns.t != Value::T::Dict || !ns.o->is_namespace) fail("TemplateRuntimeError: cannot assign attribute on non-namespace object");
                    // a namespace holding itself would never be freed (no garbage collector here)
                    if (holds_container(v, ns.o.get())) fail("ValueError: a namespace cannot hold itself");
                    ns.o->set(n.attr, std::move(v));
                    return Flow::Normal;
                }
                if (n.targets.size() == 1) {
                    assign(n.targets[0], std::move(v));
                    return Flow::Normal;
                }
                const std::vector<Value> parts = iterate(v);
                if (parts.size() != n.targets.size()) fail("ValueError: cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(n.targets.size()));
                for (size_t k = 0; k < parts.size(); ++k) assign(n.targets[k], parts[k]);
                return Flow::Normal;
            }
            case Node::K::SetBlock: {
                std::string s;
                exec(n.body, s);
                Value v = Value::str(std::move(s));
                if (n.filter) v = apply_filters(*n.filter, std::move(v));
                assign(n.targets[0], std::move(v));
                return Flow::Normal;
            }
            case Node::K::FilterBlock: {
                std::string s;
                exec(n.body, s);
                out += to_str(apply_filters(*n.filter, Value::str(std::move(s))));
                check_output(out);
                return Flow::Normal;
            }
            case Node::K::Macro: {
                const Node* def = &n;
                // the root frame holds this macro: a weak reference avoids a cycle (the frame outlives every call)
                std::weak_ptr<Frame> root_ref = frames.front();
                assign(n.text, make_func(n.text, [def, root_ref](Interp& in, std::vector<Value>& args, Kwargs& kw) {
                    const std::shared_ptr<Frame> root = root_ref.lock();
                    if (!root) fail("TemplateRuntimeError: macro '" + def->text + "' called after its template finished");
                    if (args.size() > def->params.size()) fail("TypeError: macro '" + def->text + "' takes not more than " + std::to_string(def->params.size()) + " argument(s)");
                    tick();
                    if (in.depth + 1 > nesting_limit())
                        limit_fail("depth", "macro calls nested more than " + std::to_string(nesting_limit()) + " deep");
                    ++in.depth;
                    auto saved = std::move(in.frames);
                    in.frames = {root, std::make_shared<Frame>()};
                    struct Restore {
                        Interp* in;
                        std::vector<std::shared_ptr<Frame>>* saved;
                        ~Restore() { in->frames = std::move(*saved); --in->depth; }
                    } restore{&in, &saved};
                    for (size_t k = 0; k < def->params.size(); ++k) {
                        const auto& [pn, pdef] = def->params[k];
                        Value v;
                        bool set = false;
                        if (k < args.size()) { v = args[k]; set = true; }
                        for (auto& [kn, kv] : kw)
                            if (kn == pn) { v = kv; set = true; }
                        if (!set) v = pdef ? in.eval(*pdef) : Value::undefined("parameter '" + pn + "' was not provided");
                        in.assign(pn, std::move(v));
                    }
                    std::string s;
                    in.exec(def->body, s);
                    return Value::str(std::move(s));
                }));
                return Flow::Normal;
            }
            case Node::K::Generation: return exec(n.body, out);
            case Node::K::Break: return Flow::Break;
            case Node::K::Continue: return Flow::Continue;
        }
    } catch (const RenderFailure& f) {
        if (f.msg.rfind("line ", 0) == 0) throw;
        throw RenderFailure{"line " + std::to_string(n.line) + ": " + f.msg};
    }
    return Flow::Normal;
}

}  // namespace

// ================================================================================================ public API
struct Template::Impl {
    Options opt;
    Body body;
};

Template::Template(const std::string& source, Options opts) : impl_(std::make_unique<Impl>()) {
    impl_->opt = std::move(opts);
    TemplateParser p(split_template(source, impl_->opt));
    impl_->body = p.parse_all();
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context) const {
    if (!context.is_object()) throw_bad_input("chat template: the context must be a JSON object");
    Budget budget;  // this render's bounds (Options::limits), for every helper on this thread
    budget.lim = impl_->opt.limits;
    budget.start = std::chrono::steady_clock::now();
    budget.deadline = budget.start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(budget.lim.seconds));
    struct Install {
        Budget* prev;
        explicit Install(Budget* b) : prev(t_budget) { t_budget = b; }
        ~Install() { t_budget = prev; }
    } install(&budget);
    Interp in;
    in.opt = &impl_->opt;
    auto root = std::make_shared<Frame>();
    try {
        for (auto it = context.begin(); it != context.end(); ++it) root->vars[it.key()] = from_json(it.value());
    } catch (const RenderFailure& f) {
        throw_bad_input("chat template: %s", f.msg.c_str());
    }
    in.frames.push_back(root);
    const Options* opt = &impl_->opt;
    in.globals["raise_exception"] = make_func("raise_exception", [](Interp&, std::vector<Value>& a, Kwargs&) -> Value {
        throw RenderFailure{"TemplateError: " + (a.empty() ? std::string() : to_str(a[0]))};
    });
    in.globals["strftime_now"] = make_func("strftime_now", [opt](Interp&, std::vector<Value>& a, Kwargs&) {
        const std::time_t t = opt->now ? opt->now() : std::time(nullptr);
        std::tm tm{};
        localtime_r(&t, &tm);
        char buf[256];
        const size_t n = std::strftime(buf, sizeof buf, a.empty() ? "" : to_str(a[0]).c_str(), &tm);
        return Value::str(std::string(buf, n));
    });
    in.globals["range"] = make_func("range", [](Interp&, std::vector<Value>& a, Kwargs&) {
        const RangeArgs r = range_args(a);
        if (r.count > 10000000) limit_fail("alloc_bytes", "range() of " + std::to_string(r.count) + " numbers");
        charge_n(static_cast<uint64_t>(r.count), sizeof(Value));
        Array out;
        for (int64_t k = 0; k < r.count; ++k) out.push_back(Value::integer(r.at(k)));
        return Value::list(std::move(out));
    });
    auto make_dict = [](bool ns) {
        return [ns](Interp&, std::vector<Value>& a, Kwargs& kw) {
            Value d = Value::dict();
            d.o->is_namespace = ns;
            for (const Value& x : a)
                if (x.t == Value::T::Dict)
                    for (const auto& [k, v] : x.o->items) d.o->set(k, v);
            for (auto& [k, v] : kw) d.o->set(k, v);
            return d;
        };
    };
    in.globals["namespace"] = make_func("namespace", make_dict(true));
    in.globals["dict"] = make_func("dict", make_dict(false));
    std::string out;
    try {
        in.exec(impl_->body, out);
    } catch (const RenderFailure& f) {
        throw_bad_input("chat template: %s", f.msg.c_str());
    }
    return out;
}

std::string python_json(const nlohmann::ordered_json& value, int indent) {
    std::string out;
    try {
        JsonStyle st;
        st.indent = indent;
        dump_json(out, from_json(value), st, 0);
    } catch (const RenderFailure& f) {
        throw_bad_input("%s", f.msg.c_str());
    }
    return out;
}

}  // namespace llmforge::jinja
