#include "audit/demangle.h"

#include "gtest/gtest.h"

namespace normgraph::audit {
namespace {

TEST(DemangleTest, DemanglesCxxSymbols) {
  EXPECT_EQ(Demangle("_Z6kernelPKfPfi"), "kernel(float const*, float*, int)");
  EXPECT_EQ(Demangle("_ZN2at6native4funcEv"), "at::native::func()");
}

TEST(DemangleTest, LeavesOtherNamesAlone) {
  EXPECT_EQ(Demangle("triton_red_fused_add_mean_0"),
            "triton_red_fused_add_mean_0");
  EXPECT_EQ(Demangle("_Znot a symbol"), "_Znot a symbol");
  EXPECT_EQ(Demangle("_"), "_");
  EXPECT_EQ(Demangle(""), "");
  EXPECT_EQ(Demangle(nullptr), "");
}

}  // namespace
}  // namespace normgraph::audit
