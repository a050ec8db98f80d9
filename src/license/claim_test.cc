#include "license/claim.h"

#include <gtest/gtest.h>

namespace lm::license {
namespace {

ClaimRecord Sample() { return {"gpu-7", "flexdirect-x2k9", 42, 17, 1795786672223, 1795786842223, false}; }

TEST(Claim, RoundTrips) {
  auto c = ParseClaim(SerializeClaim(Sample()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, Sample());
}

TEST(Claim, SeedPlainHostnameIsUnderstood) {
  auto c = ParseClaim("flexdirect-abcde\n");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->seed_format);
  EXPECT_EQ(c->node, "flexdirect-abcde");
  EXPECT_EQ(c->token, 0u);
}

TEST(Claim, GarbageIsAnErrorNotACrash) {
  for (const char* bad : {"", "   \n", "{", "{}", "[1]", "{\"v\":2}", "two words",
                          "{\"v\":1,\"node\":\"<script>\",\"token\":1,\"renewals\":0,\"claimed_at_ms\":0,\"renewed_at_ms\":0}",
                          "{\"v\":1,\"node\":\"n\",\"token\":-1,\"renewals\":0,\"claimed_at_ms\":0,\"renewed_at_ms\":0}",
                          "{\"v\":1,\"node\":\"n\",\"token\":\"1\",\"renewals\":0,\"claimed_at_ms\":0,\"renewed_at_ms\":0}",
                          "\xff\xfe\x00"}) {
    EXPECT_FALSE(ParseClaim(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseClaim(std::string(kMaxClaimBytes + 1, 'a')).ok());
}

TEST(Claim, ExitingRoundTripsAndIsOnlyWrittenWhenSet) {
  ClaimRecord c = Sample();
  EXPECT_EQ(SerializeClaim(c).find("exiting"), std::string::npos);  // older readers see v1 as is
  c.exiting = true;
  auto back = ParseClaim(SerializeClaim(c));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->exiting);
  EXPECT_FALSE(ParseClaim(R"({"v":1,"node":"n","token":1,"renewals":0,"claimed_at_ms":0,)"
                          R"("renewed_at_ms":0,"exiting":"yes"})")
                   .ok());
}

}  // namespace
}  // namespace lm::license
