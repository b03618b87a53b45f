// Message helpers (src/common/text.h): shortest exact numbers, the one unknown-key check, enums.
#include <gtest/gtest.h>

#include "common/text.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using test::user_error_message;

TEST(FormatNumber, PrintsTheShortestTextThatReadsBackExactly) {
  EXPECT_EQ(format_number(-1e-7), "-1e-07");  // std::to_string gave "-0.000000"
  EXPECT_EQ(format_number(0.1), "0.1");
  EXPECT_EQ(format_number(512.0), "512");
  EXPECT_EQ(format_number(0.0625), "0.0625");
  EXPECT_EQ(format_number(1e300), "1e+300");
  for (double value : {0.1, 1.0 / 3.0, 2e-3, -123456.789, 6.02214076e23}) {
    EXPECT_EQ(std::stod(format_number(value)), value) << format_number(value);
  }
}

TEST(CheckKnownKeys, NamesTheKeyAndListsTheKnownOnes) {
  const nlohmann::json object{{"window", 1}, {"windw", 2}};
  EXPECT_EQ(user_error_message([&] { check_known_keys(object, "attention", {"window", "sinks"}); }),
            "attention.windw: unknown key (known here: window, sinks)");
  EXPECT_EQ(user_error_message([&] { check_known_keys(object, "", {"window"}); }),
            "windw: unknown key (known here: window)");
  EXPECT_EQ(user_error_message([&] { check_known_keys({{"x", 1}}, "position", {}); }),
            "position.x: unknown key (known here: none)");
  EXPECT_NO_THROW(check_known_keys({{"_comment", "hi"}, {"window", 1}}, "", {"window"}, /*allow_comments=*/true));
  EXPECT_FALSE(user_error_message([&] { check_known_keys({{"_comment", "hi"}}, "", {"window"}); }).empty());
}

enum class Colour { kRed, kGreen };
constexpr EnumName<Colour> kColours[] = {{Colour::kRed, "red"}, {Colour::kGreen, "green"}};

TEST(ParseEnum, ReadsNamesAndRejectsOthersListingTheChoices) {
  EXPECT_EQ(parse_enum(kColours, "green", "paint.colour"), Colour::kGreen);
  EXPECT_STREQ(enum_name(kColours, Colour::kRed), "red");
  EXPECT_EQ(user_error_message([] { parse_enum(kColours, "blue", "paint.colour"); }),
            "paint.colour: \"blue\" is not one of red, green");
}

}  // namespace
}  // namespace extrap
