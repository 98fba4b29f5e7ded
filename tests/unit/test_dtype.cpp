// Element-type conversions, checked against the CPU's own F16C instructions and exhaustive round trips.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <random>

#include "llmforge/dtype.h"

using namespace llmforge;

__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

TEST(DType, F16ToF32AllValuesMatchHardware) {
    if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C on this CPU";
    for (uint32_t h = 0; h < 65536; ++h) {
        const float a = f16_to_f32(static_cast<uint16_t>(h)), b = hw_f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(b)) {
            EXPECT_TRUE(std::isnan(a)) << h;
        } else {
            EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << h;
        }
    }
}

TEST(DType, F32ToF16RoundsToNearestEvenLikeHardware) {
    if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C on this CPU";
    std::mt19937 rng(1);
    for (int i = 0; i < 2000000; ++i) {
        uint32_t u = rng();
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isnan(f)) continue;
        ASSERT_EQ(f32_to_f16(f), hw_f32_to_f16(f)) << "bits " << std::hex << u;
    }
    // halfway cases and the subnormal range, exhaustively around every f16 value
    for (uint32_t h = 0; h < 0x7c00; ++h) {
        const float lo = f16_to_f32(static_cast<uint16_t>(h)), hi = f16_to_f32(static_cast<uint16_t>(h + 1));
        const float mid = (lo + hi) / 2;
        EXPECT_EQ(f32_to_f16(mid), hw_f32_to_f16(mid)) << h;
        EXPECT_EQ(f32_to_f16(-mid), hw_f32_to_f16(-mid)) << h;
    }
}

TEST(DType, BF16RoundTrip) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
    // round to nearest even: 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125 → 1.0 (even)
    EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = bf16_to_f32(static_cast<uint16_t>(h));
        if (!std::isnan(f)) {
            EXPECT_EQ(f32_to_bf16(f), h);
        }
    }
}

TEST(DType, Names) {
    EXPECT_STREQ(dtype_name(DType::Q4_K), "q4_k");
    EXPECT_EQ(dtype_from_name("bf16"), DType::BF16);
    EXPECT_FALSE(dtype_supported(DType::Q8_0));
}
