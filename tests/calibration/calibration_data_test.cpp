// Calibration samples: deterministic windows from text and JSON lines, BOS
// placement, short texts (warning, or an error naming the file), bad JSON
// lines named by number, and the real stories260K calibration text.
#include <gtest/gtest.h>

#include <set>

#include "calibration/calibration_data.h"
#include "core/error.h"
#include "test_data.h"
#include "tiny_model.h"
#include "tokenizer/tokenizer.h"

namespace sparq {
namespace {

using testing::ByteTokenizer;

CalibrationSamples draw(const std::string& path, int64_t samples, int64_t len, uint64_t seed) {
    ByteTokenizer tokenizer;
    return draw_calibration_samples({path, samples, len, seed}, tokenizer);
}

TEST(CalibrationData, WindowsAreDeterministicDistinctAndStartWithBos) {
    const std::string dir = testing::temp_dir("calib-data");
    const std::string text = testing::tiny_text(10000);
    testing::write_file(dir + "/t.txt", text);
    const CalibrationSamples a = draw(dir + "/t.txt", 8, 100, 3);
    const CalibrationSamples b = draw(dir + "/t.txt", 8, 100, 3);
    const CalibrationSamples c = draw(dir + "/t.txt", 8, 100, 4);
    ASSERT_EQ(a.samples, 8);
    EXPECT_EQ(a.tokens.size(), 800u);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_NE(a.tokens, c.tokens);
    EXPECT_TRUE(a.warnings.empty());
    EXPECT_EQ(a.text_tokens, 10000);
    EXPECT_EQ(a.data_checksum, xxh64_checksum(text.data(), text.size()));
    // Each sample is window k of the text (tokens k*100+1 ..), BOS first,
    // windows distinct and in text order.
    std::vector<int64_t> windows;
    for (int64_t s = 0; s < a.samples; ++s) {
        const int32_t* t = a.sample(s);
        EXPECT_EQ(t[0], 1);
        bool found = false;
        for (int64_t k = 0; k < 100 && !found; ++k) {
            bool match = true;
            for (int64_t i = 1; i < 100 && match; ++i) {
                match = t[i] == static_cast<int32_t>(static_cast<unsigned char>(text[k * 100 + i])) + 3;
            }
            if (match) {
                windows.push_back(k);
                found = true;
            }
        }
        EXPECT_TRUE(found) << "sample " << s << " is not a window of the text";
    }
    EXPECT_TRUE(std::is_sorted(windows.begin(), windows.end()));
    EXPECT_EQ(std::set<int64_t>(windows.begin(), windows.end()).size(), windows.size());
}

TEST(CalibrationData, ShortTextsWarnOrFail) {
    const std::string dir = testing::temp_dir("calib-short");
    testing::write_file(dir + "/t.txt", testing::tiny_text(350));
    const CalibrationSamples s = draw(dir + "/t.txt", 10, 100, 0);
    EXPECT_EQ(s.samples, 3);
    ASSERT_EQ(s.warnings.size(), 1u);
    EXPECT_NE(s.warnings[0].find("3 samples of 100 tokens instead of the 10 asked"), std::string::npos) << s.warnings[0];
    try {
        draw(dir + "/t.txt", 10, 500, 0);
        FAIL() << "a text shorter than one sample was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().file, dir + "/t.txt");
        EXPECT_NE(e.message().find("fewer than one calibration sample"), std::string::npos) << e.message();
    }
    EXPECT_THROW(draw(dir + "/missing.txt", 1, 10, 0), Error);
    EXPECT_THROW(draw(dir + "/t.txt", 0, 10, 0), Error);
    EXPECT_THROW(draw(dir + "/t.txt", 1, 1, 0), Error);
}

TEST(CalibrationData, AllTakesEveryWindowInOrderWhateverTheSeed) {
    const std::string dir = testing::temp_dir("calib-all");
    const std::string text = testing::tiny_text(1050);
    testing::write_file(dir + "/t.txt", text);
    const CalibrationSamples a = draw(dir + "/t.txt", kAllCalibrationWindows, 100, 0);
    const CalibrationSamples b = draw(dir + "/t.txt", kAllCalibrationWindows, 100, 7);
    ASSERT_EQ(a.samples, 10);  // the 50 tokens past the last whole window are left out
    EXPECT_TRUE(a.warnings.empty());
    EXPECT_EQ(a.tokens, b.tokens);
    for (int64_t s = 0; s < a.samples; ++s) {
        EXPECT_EQ(a.sample(s)[0], 1);
        for (int64_t i = 1; i < 100; ++i) {
            ASSERT_EQ(a.sample(s)[i], static_cast<int32_t>(static_cast<unsigned char>(text[s * 100 + i])) + 3)
                << "sample " << s << " token " << i;
        }
    }
    // The same windows as a count equal to the text's.
    EXPECT_EQ(draw(dir + "/t.txt", 10, 100, 5).tokens, a.tokens);
}

TEST(CalibrationData, SampleCountsParseAsANumberOrAll) {
    EXPECT_EQ(parse_calibration_samples("all", "--calib-samples"), kAllCalibrationWindows);
    EXPECT_EQ(parse_calibration_samples("128", "--calib-samples"), 128);
    EXPECT_EQ(calibration_samples_name(kAllCalibrationWindows), "all");
    EXPECT_EQ(calibration_samples_name(64), "64");
    for (const char* bad : {"0", "-3", "", "12x", "ALL", " 5", "99999999999999999999"}) {
        try {
            parse_calibration_samples(bad, "calib_samples");
            ADD_FAILURE() << "'" << bad << "' was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.context().field, "calib_samples");
            EXPECT_NE(e.message().find("'all'"), std::string::npos) << e.message();
        }
    }
}

TEST(CalibrationData, JsonLinesTakeTheTextField) {
    const std::string dir = testing::temp_dir("calib-jsonl");
    testing::write_file(dir + "/d.jsonl", "{\"text\": \"abcdefgh\", \"id\": 1}\n\n{\"text\": \"ijklmnop\"}\n");
    const CalibrationSamples s = draw(dir + "/d.jsonl", 4, 6, 0);
    // Stream: BOS abcdefgh BOS ijklmnop = 18 tokens, three windows of 6.
    EXPECT_EQ(s.text_tokens, 18);
    ASSERT_EQ(s.samples, 3);
    const std::vector<int32_t> second(s.sample(1), s.sample(1) + 6);
    // Window 1 is "f g h BOS i j" with its first token replaced by BOS.
    EXPECT_EQ(second, (std::vector<int32_t>{1, 'g' + 3, 'h' + 3, 1, 'i' + 3, 'j' + 3}));

    testing::write_file(dir + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
    try {
        draw(dir + "/bad.jsonl", 1, 2, 0);
        FAIL() << "a line without text was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().field, "line 2");
        EXPECT_EQ(e.context().file, dir + "/bad.jsonl");
    }
    testing::write_file(dir + "/broken.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n");
    EXPECT_THROW(draw(dir + "/broken.jsonl", 1, 2, 0), Error);
}

TEST(CalibrationData, RealCalibrationTextOfStories260K) {
    SPARQ_REQUIRE_DATA("stories260K/hf/tokenizer.model");
    const auto tokenizer = load_tokenizer(testing::data_path("stories260K/hf/tokenizer.model"), 512);
    const CalibrationSamples s = draw_calibration_samples(
        {testing::data_path("text/tinystories-calibration-selfgen.txt"), 128, 512, 0}, *tokenizer);
    // The text holds 55,783 tokens: 108 windows of 512, with a warning.
    EXPECT_EQ(s.text_tokens, 55783);
    EXPECT_EQ(s.samples, 108);
    EXPECT_EQ(s.warnings.size(), 1u);
    const CalibrationSamples small = draw_calibration_samples(
        {testing::data_path("text/tinystories-calibration-selfgen.txt"), 16, 256, 0}, *tokenizer);
    EXPECT_EQ(small.samples, 16);
    EXPECT_TRUE(small.warnings.empty());
}

}  // namespace
}  // namespace sparq
