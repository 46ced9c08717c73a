#include <gtest/gtest.h>

#include "core/error.h"
#include "models/config.h"
#include "test_data.h"

namespace sparq {
namespace {

TEST(Config, ReadsTheSharedModels) {
    SPARQ_REQUIRE_DATA("stories260K/hf/config.json");
    const ModelConfig c = load_hf_config(testing::data_path("stories260K/hf/config.json"));
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.num_layers, 5);
    EXPECT_EQ(c.num_heads, 8);
    EXPECT_EQ(c.num_kv_heads, 4);
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_EQ(c.intermediate_size, 172);
    EXPECT_EQ(c.vocab_size, 512);
    EXPECT_TRUE(c.tie_word_embeddings);
    const ModelConfig v2 = load_hf_config(testing::data_path("small-llama-v2/hf/config.json"));
    EXPECT_EQ(v2.num_kv_heads, 2);
    EXPECT_FALSE(v2.tie_word_embeddings);
}

std::string error_of(const std::string& json) {
    try {
        parse_hf_config(json, "config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(Config, UnsupportedArchitectureIsNamed) {
    const std::string msg = error_of(R"({"architectures":["GPTNeoXForCausalLM"],"hidden_size":8})");
    EXPECT_NE(msg.find("GPTNeoXForCausalLM"), std::string::npos) << msg;
}

TEST(Config, BadFieldsAreNamed) {
    const std::string base = R"("architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":32)";
    EXPECT_NE(error_of("{" + base + R"(,"num_attention_heads":8,"num_key_value_heads":3})").find("num_key_value_heads"),
              std::string::npos);
    EXPECT_NE(error_of("{" + base + "}").find("num_attention_heads"), std::string::npos);
    EXPECT_NE(error_of("{" + base + R"(,"num_attention_heads":"eight"})").find("num_attention_heads"),
              std::string::npos);
    EXPECT_NE(error_of("not json").find("not valid JSON"), std::string::npos);
    EXPECT_NE(error_of("{" + base + R"(,"num_attention_heads":8,"hidden_act":"gelu"})").find("hidden_act"),
              std::string::npos);
}

TEST(Config, JsonRoundTrip) {
    ModelConfig c;
    c.hidden_size = 128;
    c.intermediate_size = 344;
    c.num_layers = 3;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 32;
    c.vocab_size = 1000;
    c.tie_word_embeddings = true;
    c.rope_theta = 500000;
    const ModelConfig back = parse_hf_config(config_to_json(c), "roundtrip");
    EXPECT_EQ(back.hidden_size, 128);
    EXPECT_EQ(back.num_kv_heads, 2);
    EXPECT_EQ(back.rope_theta, 500000);
    EXPECT_TRUE(back.tie_word_embeddings);
}

}  // namespace
}  // namespace sparq
