#include "common/random.h"

#include <gtest/gtest.h>

#include <set>

namespace lm {
namespace {

TEST(NewUuidV4, HasVersionAndVariantBits) {
  for (int i = 0; i < 100; ++i) {
    std::string id = NewUuidV4();
    ASSERT_TRUE(LooksLikeUuid(id)) << id;
    EXPECT_EQ(id[14], '4');
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
  }
}

TEST(NewUuidV4, IsUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(NewUuidV4()).second);
}

TEST(LooksLikeUuid, RejectsOtherShapes) {
  EXPECT_FALSE(LooksLikeUuid(""));
  EXPECT_FALSE(LooksLikeUuid("1B4E28BA-2FA1-4D2E-883F-0016D3CCA427"));
  EXPECT_FALSE(LooksLikeUuid("1b4e28ba-2fa1-4d2e-883f-0016d3cca42"));
  EXPECT_FALSE(LooksLikeUuid("1b4e28ba_2fa1-4d2e-883f-0016d3cca427"));
}

}  // namespace
}  // namespace lm
