#include "common/strings.h"

#include <gtest/gtest.h>

#include <string_view>

namespace lm {
namespace {

TEST(ParseWholeNumber, AcceptsDigitsWithinMax) {
  auto r = ParseWholeNumber("30", "timeout", 300);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 30);
  EXPECT_EQ(*ParseWholeNumber("0", "t", 0), 0);
}

TEST(ParseWholeNumber, RejectsSignsSpacesHexAndEmpty) {
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x10", "1.5", "1e3", "abc", "１"}) {
    auto r = ParseWholeNumber(bad, "timeout", 300);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("timeout"), std::string::npos);
  }
}

TEST(ParseWholeNumber, RejectsAboveMaxAndOverflow) {
  EXPECT_FALSE(ParseWholeNumber("301", "t", 300).ok());
  EXPECT_FALSE(ParseWholeNumber("99999999999999999999999", "t", 300).ok());
}

TEST(ValidateLabel, AcceptsNodeNames) {
  EXPECT_TRUE(ValidateLabel("ip-10-0-0-1.ec2.internal", "holder").ok());
  EXPECT_TRUE(ValidateLabel("gpu_node:7", "holder").ok());
}

TEST(ValidateLabel, RejectsHostileText) {
  for (const char* bad : {"", "<script>", "a b", "a\nb", "\"><img onerror=x>", "../etc"}) {
    EXPECT_FALSE(ValidateLabel(bad, "holder").ok()) << bad;
  }
  EXPECT_FALSE(ValidateLabel(std::string(254, 'a'), "holder").ok());
  EXPECT_TRUE(ValidateLabel(std::string(253, 'a'), "holder").ok());
}

TEST(Redact, KeepsOnlyAPrefix) {
  EXPECT_EQ(Redact("1b4e28ba-2fa1-4d2e-883f-0016d3cca427"), "1b4e28ba…");
  EXPECT_EQ(Redact("short"), "…");
}

TEST(ConstantTimeEquals, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

TEST(JsonEscape, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonEscape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
}

TEST(PercentDecode, DecodesAndRejectsMalformed) {
  EXPECT_EQ(*PercentDecode("node%2D1"), "node-1");
  EXPECT_FALSE(PercentDecode("%").ok());
  EXPECT_FALSE(PercentDecode("%4").ok());
  EXPECT_FALSE(PercentDecode("%zz").ok());
  EXPECT_FALSE(PercentDecode("a%00b").ok());
}

TEST(PercentDecode, PlainTextIsCopiedButARawNulIsStillRefused) {
  EXPECT_EQ(*PercentDecode("holder=node-1.example"), "holder=node-1.example");
  EXPECT_EQ(*PercentDecode(""), "");
  EXPECT_FALSE(PercentDecode(std::string_view("ab\0c", 4)).ok());      // no '%' anywhere
  EXPECT_FALSE(PercentDecode(std::string_view("%41\0c", 5)).ok());     // and with one
  EXPECT_EQ(*PercentDecode("%41+b"), "A+b");  // '+' is literal here (forms decode it first)
}

TEST(PercentEncode, KeepsUnreservedAndRoundTripsEverythingElse) {
  EXPECT_EQ(PercentEncode("a-Z_0.~"), "a-Z_0.~");
  EXPECT_EQ(PercentEncode("2026-12-01T00:00:00Z"), "2026-12-01T00%3A00%3A00Z");
  const std::string all = [] {
    std::string s;
    for (int c = 1; c < 256; ++c) s += static_cast<char>(c);
    return s;
  }();
  EXPECT_EQ(*PercentDecode(PercentEncode(all)), all);
}

}  // namespace
}  // namespace lm
