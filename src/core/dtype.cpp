#include "llmforge/dtype.h"

#include "core/weight_types.h"

namespace llmforge {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::F16: return "f16";
        case DType::BF16: return "bf16";
        case DType::Q4_0: return "q4_0";
        case DType::Q4_1: return "q4_1";
        case DType::Q5_0: return "q5_0";
        case DType::Q5_1: return "q5_1";
        case DType::Q8_0: return "q8_0";
        case DType::Q8_1: return "q8_1";
        case DType::Q2_K: return "q2_k";
        case DType::Q3_K: return "q3_k";
        case DType::Q4_K: return "q4_k";
        case DType::Q5_K: return "q5_k";
        case DType::Q6_K: return "q6_k";
        case DType::Q8_K: return "q8_k";
        case DType::I8: return "i8";
        case DType::I16: return "i16";
        case DType::I32: return "i32";
        case DType::I64: return "i64";
        case DType::F64: return "f64";
        case DType::IQ2_XXS: return "iq2_xxs";
        case DType::IQ2_XS: return "iq2_xs";
        case DType::IQ3_XXS: return "iq3_xxs";
        case DType::IQ1_S: return "iq1_s";
        case DType::IQ4_NL: return "iq4_nl";
        case DType::IQ3_S: return "iq3_s";
        case DType::IQ2_S: return "iq2_s";
        case DType::IQ4_XS: return "iq4_xs";
        case DType::IQ1_M: return "iq1_m";
        case DType::TQ1_0: return "tq1_0";
        case DType::TQ2_0: return "tq2_0";
        default: return "unknown";
    }
}

DType dtype_from_name(const std::string& name) {
    if (name == "f32" || name == "F32") return DType::F32;
    if (name == "f16" || name == "F16") return DType::F16;
    if (name == "bf16" || name == "BF16") return DType::BF16;
    return DType::Unknown;
}

bool dtype_supported(DType t) { return find_weight_type(t) != nullptr; }

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: case DType::I32: return 4;
        case DType::F16: case DType::BF16: case DType::I16: return 2;
        case DType::I8: return 1;
        case DType::I64: case DType::F64: return 8;
        default: return 0;
    }
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
            mant &= 0x3ffu;
            u = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);     // NaN
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);    // overflow (incl. inf) after rounding
    if (abs < 0x38800000u) {                                                 // subnormal or zero in f16
        if (abs < 0x33000000u) return sign;                                  // < half the smallest subnormal
        const uint32_t e = abs >> 23;
        const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        // Exact round-to-nearest-even on the 24-bit mantissa shifted right by (shift):
        const uint32_t s = 126 - e;  // bits to drop: the f16 subnormal unit is 2^-24
        uint32_t q = m >> s;
        const uint32_t rem = m & ((1u << s) - 1);
        const uint32_t half = 1u << (s - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return static_cast<uint16_t>(sign | q);
    }
    uint32_t q = abs - 0x38000000u;  // rebias exponent 127 → 15
    const uint32_t rem = q & 0x1fffu;
    q >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
}

}  // namespace llmforge
