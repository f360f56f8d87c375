// The raw-text checks and plain-scalar resolution under the loader.
#include "yaml_scalar.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace nodeplane::yaml {
namespace {

TEST(ResolvePlainScalar, Core12Schema) {
  EXPECT_TRUE(resolvePlainScalar("").is_null());
  EXPECT_TRUE(resolvePlainScalar("~").is_null());
  EXPECT_TRUE(resolvePlainScalar("NULL").is_null());
  EXPECT_EQ(resolvePlainScalar("True"), true);
  EXPECT_EQ(resolvePlainScalar("FALSE"), false);
  EXPECT_EQ(resolvePlainScalar("tRue"), "tRue");
  EXPECT_EQ(resolvePlainScalar("+12"), 12);
  EXPECT_EQ(resolvePlainScalar("-0"), 0);
  EXPECT_EQ(resolvePlainScalar("0x_1"), "0x_1");
  EXPECT_EQ(resolvePlainScalar("0xff"), 255);
  EXPECT_EQ(resolvePlainScalar("0o777"), 511);
  EXPECT_EQ(resolvePlainScalar("0o8"), "0o8");
  EXPECT_EQ(resolvePlainScalar("-9223372036854775808"), INT64_MIN);
  EXPECT_TRUE(resolvePlainScalar("99999999999999999999999").is_number_float());
  EXPECT_EQ(resolvePlainScalar("1_000"), "1_000");
  EXPECT_EQ(resolvePlainScalar("1."), 1.0);
  EXPECT_EQ(resolvePlainScalar(".5"), 0.5);
  EXPECT_EQ(resolvePlainScalar("+1e-2"), 0.01);
  EXPECT_EQ(resolvePlainScalar("1e"), "1e");
  EXPECT_EQ(resolvePlainScalar("."), ".");
  EXPECT_TRUE(std::isnan(resolvePlainScalar(".NaN").get<double>()));
  EXPECT_EQ(resolvePlainScalar("+.inf"), INFINITY);
  EXPECT_EQ(resolvePlainScalar("0000:3b:00.0"), "0000:3b:00.0");
  EXPECT_EQ(resolvePlainScalar("52:54:00:12:34:56"), "52:54:00:12:34:56");
}

TEST(IsSafePlainString, QuotesLookalikes) {
  EXPECT_TRUE(isSafePlainString("br0"));
  EXPECT_FALSE(isSafePlainString("1500"));
  EXPECT_FALSE(isSafePlainString(""));
  EXPECT_FALSE(isSafePlainString("off"));
  // YAML 1.1 base 60: PyYAML reads 0000:41:00.0 as 2460.0.
  EXPECT_FALSE(isSafePlainString("0000:41:00.0"));
  EXPECT_FALSE(isSafePlainString("1:30"));
  EXPECT_FALSE(isSafePlainString("-1:20:59.5"));
  EXPECT_TRUE(isSafePlainString("0000:3b:00.0")) << "hex: a string in 1.1 as well";
  EXPECT_FALSE(isSafePlainString("52:54:00:12:34:56")) << "a MAC of decimal pairs: base 60 too";
  EXPECT_TRUE(isSafePlainString("1:60"));
  EXPECT_TRUE(isSafePlainString("10.0.0.1:80"));
}

TEST(CheckEncoding, Positions) {
  EXPECT_TRUE(checkEncoding("a: b\n\tc: \xC3\xA9\r\n").message.empty());
  EXPECT_TRUE(checkEncoding("\xEF\xBB\xBF"
                            "a: b\n")
                  .message.empty());
  auto p = checkEncoding("a\nbc\x01\n");
  EXPECT_EQ(p.line, 2);
  EXPECT_EQ(p.column, 3);
  EXPECT_EQ(p.message, "binary data (control character 0x01): not UTF-8 text");
  EXPECT_EQ(checkEncoding("\xC0\x80").message, "not UTF-8 text (invalid byte 0xC0)");  // overlong
  EXPECT_EQ(checkEncoding("\xED\xA0\x80").message, "not UTF-8 text (invalid sequence)");
  EXPECT_EQ(checkEncoding("ok \xE2\x82").message, "not UTF-8 text (truncated sequence)");
  EXPECT_EQ(checkEncoding("\xFF\xFE"
                          "a\0")
                .message,
            "not UTF-8 text (invalid byte 0xFF)");
}

TEST(FindTabIndentation, Lines) {
  EXPECT_TRUE(findTabIndentation("a:\n  b: 1\t# tab after content is fine\n").empty());
  EXPECT_TRUE(findTabIndentation("a:\n\t\n  b: 1\n").empty());  // whitespace-only line
  auto t = findTabIndentation("a:\n  b: 1\n \tc: 2\n\td: 3\n");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].line, 3);
  EXPECT_EQ(t[0].column, 2);
  EXPECT_EQ(t[1].line, 4);
  // Inside a block scalar tabs are data; after it they are indentation again.
  t = findTabIndentation("s: |-\n  x\n  \ty\n\n  z\nk: >\n\tbad\n");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].line, 7);
}

}  // namespace
}  // namespace nodeplane::yaml
