// printable(), printableLines() and jsonText(): the one way text from files and the host reaches
// a terminal, a log or JSON output.
#include "nodeplane/text.hpp"

#include <gtest/gtest.h>

#include "nodeplane/resource.hpp"

namespace nodeplane {
namespace {

TEST(Printable, EscapesControlCharactersAndBytesThatAreNotUtf8) {
  EXPECT_EQ(printable("br0"), "br0");
  EXPECT_EQ(printable(""), "");
  EXPECT_EQ(printable("br\x1b[2J"), "br\\x1b[2J");
  EXPECT_EQ(printable("a\nerror: forged"), "a\\nerror: forged");
  EXPECT_EQ(printable("a\rb\tc"), "a\\rb\\tc");
  EXPECT_EQ(printable(std::string_view("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable("del\x7f"), "del\\x7f");
  // C1 controls: U+0085 (NEL) and U+009B (the 8-bit CSI some terminals obey).
  EXPECT_EQ(printable("a\u0085b\u009b"), "a\\u0085b\\u009b");
  // Bytes that are not UTF-8: a lone byte, a cut sequence, an overlong '/', a surrogate.
  EXPECT_EQ(printable("br\xff"), "br\\xff");
  EXPECT_EQ(printable("x\xc3"), "x\\xc3");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  // Everything else is kept: non-ASCII text, quotes, backslashes.
  EXPECT_EQ(printable("br-\u00e9t\u00e9 \u4e2d \"q\" \\x1b"),
            "br-\u00e9t\u00e9 \u4e2d \"q\" \\x1b");
  EXPECT_EQ(printable("\U0001f600"), "\U0001f600");
}

TEST(Printable, LinesKeepTheirBreaks) {
  EXPECT_EQ(printableLines("ok\nbad \x1b[31m\n"), "ok\nbad \\x1b[31m\n");
  EXPECT_EQ(printableLines("no break"), "no break");
  EXPECT_EQ(printableLines(""), "");
}

TEST(JsonText, NeverThrowsOnBytesThatAreNotUtf8) {
  Json j = {{"name", "br\xff"}, {"ok", "br\x1b"}};
  EXPECT_THROW((void)j.dump(), Json::type_error);  // what aborted `--output json diff`
  EXPECT_EQ(jsonText(j), "{\"name\":\"br\xef\xbf\xbd\",\"ok\":\"br\\u001b\"}");
  EXPECT_EQ(jsonText(Json{{"a", 1}}, 2), "{\n  \"a\": 1\n}");
}

}  // namespace
}  // namespace nodeplane
