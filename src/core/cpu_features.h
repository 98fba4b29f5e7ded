// CPU features that __builtin_cpu_supports does not name in every compiler (clang 14 has no "f16c").
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
namespace llmforge {
inline bool cpu_has_f16c() {  // CPUID leaf 1, ECX bit 29
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
}  // namespace llmforge
#endif
