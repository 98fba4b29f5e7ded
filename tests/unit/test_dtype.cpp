#include <gtest/gtest.h>
#include "llmforge/dtype.h"
TEST(DType, Placeholder) { EXPECT_EQ(llmforge::f16_to_f32(0x3c00), 1.0f); }
