// The HDF5 statistics cache: round trip; hit and miss on a changed model,
// data, seed or sample count; damaged, truncated, foreign and hand-crafted
// hostile files rejected with a message naming the file and dataset, then
// recomputed (or an error when there is no data to recompute from).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "calibration/statistics_cache.h"
#include "calibration/statistics_source.h"
#include "core/error.h"
#include "tiny_model.h"

namespace sparq {
namespace {

using StatisticsMap = std::map<std::pair<int64_t, int>, ActivationStatistics>;

struct Fixture {
    std::string dir;
    std::string text_path;
    CalibrationDataOptions data;

    explicit Fixture(const std::string& name) : dir(testing::temp_dir(name)) {
        text_path = dir + "/calib.txt";
        testing::write_file(text_path, testing::tiny_text(3000));
        data = {text_path, 4, 32, 0};
    }
};

StatisticsOutcome visit(const ModelSource& model, std::optional<CalibrationDataOptions> data, const std::string& cache,
                        StatisticsMap* out = nullptr) {
    StatisticsRequest request;
    request.data = std::move(data);
    request.cache_path = cache;
    return visit_statistics(model, request, [&](int64_t layer, InputSpace space, const ActivationStatistics& s) {
        if (out) (*out)[{layer, static_cast<int>(space)}] = s;
    });
}

void expect_close(const StatisticsMap& a, const StatisticsMap& b) {
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [key, s] : a) {
        const ActivationStatistics& t = b.at(key);
        ASSERT_EQ(s.hessian.size(), t.hessian.size());
        for (size_t i = 0; i < s.hessian.size(); ++i) {
            // The cache stores float32.
            EXPECT_NEAR(s.hessian[i], t.hessian[i], 1e-6 * (1 + std::fabs(s.hessian[i])));
        }
        EXPECT_EQ(s.tokens, t.tokens);
    }
}

TEST(StatisticsCache, HitAndMissOnModelDataSeedAndSamples) {
    Fixture f("cache-hit");
    const ModelSource model = testing::tiny_model();
    const std::string cache = f.dir + "/calibration.h5";
    StatisticsMap computed, cached;
    try {
        visit(model, std::nullopt, cache);
        FAIL() << "a missing cache without data was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().file, cache);
        EXPECT_NE(e.message().find("does not exist"), std::string::npos) << e.message();
    }
    EXPECT_EQ(visit(model, f.data, cache, &computed).cache, "written");
    EXPECT_EQ(std::filesystem::status(cache).permissions() & std::filesystem::perms::others_read,
              std::filesystem::perms::others_read);
    const StatisticsOutcome hit = visit(model, f.data, cache, &cached);
    EXPECT_EQ(hit.cache, "hit");
    EXPECT_EQ(hit.samples, 4);
    EXPECT_EQ(hit.tokens, 4 * 32);
    expect_close(computed, cached);
    // Without data, a cache of this model is used.
    EXPECT_EQ(visit(model, std::nullopt, cache).cache, "hit");

    CalibrationDataOptions other_seed = f.data;
    other_seed.seed = 9;
    std::string status = visit(model, other_seed, cache).cache;
    EXPECT_EQ(status.rfind("recomputed: ", 0), 0u) << status;
    EXPECT_NE(status.find("seed 0"), std::string::npos) << status;
    EXPECT_EQ(visit(model, other_seed, cache).cache, "hit");  // rewritten for seed 9

    CalibrationDataOptions more = other_seed;
    more.samples = 5;
    status = visit(model, more, cache).cache;
    EXPECT_NE(status.find("samples"), std::string::npos) << status;

    // Every window, in text order: the seed draws nothing, so another seed
    // still hits.
    CalibrationDataOptions all = more;
    all.samples = kAllCalibrationWindows;
    status = visit(model, all, cache).cache;
    EXPECT_NE(status.find("all x 32 were asked"), std::string::npos) << status;
    all.seed = 10;
    const StatisticsOutcome every = visit(model, all, cache);
    EXPECT_EQ(every.cache, "hit");
    EXPECT_GT(every.samples, 5);

    testing::write_file(f.text_path, testing::tiny_text(3000, 99));
    status = visit(model, more, cache).cache;
    EXPECT_NE(status.find("other calibration data"), std::string::npos) << status;

    const ModelSource other_model = testing::tiny_model(2);
    status = visit(other_model, more, cache).cache;
    EXPECT_NE(status.find("another model"), std::string::npos) << status;
    // The cache now belongs to the other model: without data, this model
    // cannot use it.
    try {
        visit(model, std::nullopt, cache);
        FAIL() << "a cache of another model was used";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().file, cache);
        EXPECT_NE(e.message().find("another model"), std::string::npos) << e.message();
    }
}

// Offset of a contiguous dataset's bytes in the file.
haddr_t dataset_offset(const std::string& file, const std::string& dataset) {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
    const haddr_t offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    return offset;
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(StatisticsCache, DamagedFilesAreRejectedAndRecomputed) {
    Fixture f("cache-damaged");
    const ModelSource model = testing::tiny_model();
    const std::string good = f.dir + "/good.h5";
    StatisticsMap reference;
    visit(model, f.data, good, &reference);
    const std::string bytes = read_bytes(good);
    const haddr_t offset = dataset_offset(good, "/layers/1/mlp_hidden/hessian");
    ASSERT_NE(offset, HADDR_UNDEF);

    struct Damage {
        std::string name, contents, expected;
    };
    std::string flipped = bytes;
    flipped[static_cast<size_t>(offset) + 100] ^= 0x40;
    const std::vector<Damage> damages = {
        {"flipped", flipped, "/layers/1/mlp_hidden/hessian"},
        {"truncated", bytes.substr(0, bytes.size() / 2), ""},
        {"garbage", std::string(4096, 'x'), "not an HDF5 file"},
        {"empty", "", "not an HDF5 file"},
    };
    for (const Damage& d : damages) {
        const std::string path = f.dir + "/" + d.name + ".h5";
        testing::write_file(path, d.contents);
        try {
            visit(model, std::nullopt, path);
            FAIL() << d.name << ": a damaged cache was used";
        } catch (const Error& e) {
            EXPECT_EQ(e.context().file, path) << d.name;
            EXPECT_NE(std::string(e.what()).find(d.expected), std::string::npos) << d.name << ": " << e.what();
        }
        StatisticsMap recomputed;
        const std::string status = visit(model, f.data, path, &recomputed).cache;
        EXPECT_EQ(status.rfind("recomputed: ", 0), 0u) << d.name << ": " << status;
        expect_close(reference, recomputed);
        EXPECT_EQ(visit(model, f.data, path).cache, "hit") << d.name;
    }
    // The flipped byte is caught by the dataset's checksum.
    const std::string path = f.dir + "/flipped2.h5";
    testing::write_file(path, flipped);
    try {
        StatisticsCacheReader(path).verify_all(model.config, true);
        FAIL() << "a flipped byte went unnoticed";
    } catch (const Error& e) {
        EXPECT_NE(e.message().find("checksum mismatch"), std::string::npos) << e.what();
        EXPECT_EQ(e.context().field, "/layers/1/mlp_hidden/hessian");
    }
}

// Replaces a dataset of a valid cache with one of another type or shape.
void replace_dataset(const std::string& file, const std::string& group, const char* name, hid_t type,
                     std::vector<hsize_t> dims) {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t g = H5Gopen2(f, group.c_str(), H5P_DEFAULT);
    H5Ldelete(g, name, H5P_DEFAULT);
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t d = H5Dcreate2(g, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    size_t count = 1;
    for (hsize_t x : dims) count *= x;
    std::vector<double> zeros(count, 0.0);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
    H5Dclose(d);
    H5Sclose(space);
    H5Gclose(g);
    H5Fclose(f);
}

TEST(StatisticsCache, HostileContentsAreNamed) {
    Fixture f("cache-hostile");
    const ModelSource model = testing::tiny_model();
    const std::string good = f.dir + "/good.h5";
    visit(model, f.data, good);
    const std::string bytes = read_bytes(good);
    const int64_t d = model.config.hidden_size;
    struct Case {
        std::string name;
        std::function<void(const std::string&)> damage;
        std::string field, message;
    };
    const std::vector<Case> cases = {
        {"int-type",
         [&](const std::string& p) {
             replace_dataset(p, "/layers/0/attn_input", "mean_abs", H5T_STD_I32LE, {static_cast<hsize_t>(d)});
         },
         "/layers/0/attn_input/mean_abs", "float32"},
        {"double-type",
         [&](const std::string& p) {
             replace_dataset(p, "/layers/0/attn_input", "max_abs", H5T_IEEE_F64LE, {static_cast<hsize_t>(d)});
         },
         "/layers/0/attn_input/max_abs", "float32"},
        {"shape",
         [&](const std::string& p) {
             replace_dataset(p, "/layers/1/mlp_input", "hessian", H5T_IEEE_F32LE,
                             {static_cast<hsize_t>(d), static_cast<hsize_t>(d + 1)});
         },
         "/layers/1/mlp_input/hessian", "has shape"},
        {"rank",
         [&](const std::string& p) {
             replace_dataset(p, "/layers/0/mlp_hidden", "mean_square", H5T_IEEE_F32LE, {4, 12});
         },
         "/layers/0/mlp_hidden/mean_square", "rank"},
        {"no-checksum",
         [&](const std::string& p) {
             replace_dataset(p, "/layers/0/attn_output", "mean_square", H5T_IEEE_F32LE,
                             {static_cast<hsize_t>(model.config.q_dim())});
         },
         "/layers/0/attn_output/mean_square@xxh64", "missing attribute"},
        {"missing-group",
         [&](const std::string& p) {
             const hid_t file = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
             H5Ldelete(file, "/layers/1", H5P_DEFAULT);
             H5Fclose(file);
         },
         "/layers/1/attn_input", "missing group"},
        {"format",
         [&](const std::string& p) {
             const hid_t file = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
             H5Adelete(file, "format");
             H5Fclose(file);
         },
         "format", "missing attribute"},
    };
    for (const Case& c : cases) {
        const std::string path = f.dir + "/" + c.name + ".h5";
        testing::write_file(path, bytes);
        c.damage(path);
        try {
            StatisticsCacheReader(path).verify_all(model.config, true);
            FAIL() << c.name << ": accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.context().file, path) << c.name;
            EXPECT_EQ(e.context().field, c.field) << c.name << ": " << e.what();
            EXPECT_NE(e.message().find(c.message), std::string::npos) << c.name << ": " << e.what();
        }
        EXPECT_EQ(visit(model, f.data, path).cache.rfind("recomputed: ", 0), 0u) << c.name;
    }
    // A cache for another shape of model.
    ModelConfig wider = model.config;
    wider.intermediate_size = 64;
    EXPECT_THROW(StatisticsCacheReader(good).check_shape(wider), Error);
}

TEST(StatisticsCache, WritesAreAtomic) {
    Fixture f("cache-atomic");
    const ModelSource model = testing::tiny_model();
    const std::string path = f.dir + "/calibration.h5";
    {
        CacheHeader header;
        header.key = {"m", "d", 1, 2, 3};
        StatisticsCacheWriter writer(path, header);
        EXPECT_FALSE(std::filesystem::exists(path));
        // Destroyed without commit: no file, no temporary left behind.
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    size_t entries = 0;
    for (const auto& e : std::filesystem::directory_iterator(f.dir)) entries += e.path().filename() != "calib.txt";
    EXPECT_EQ(entries, 0u);
    // Statistics that overflowed are refused rather than written.
    CacheHeader header;
    StatisticsCacheWriter writer(path, header);
    ActivationStatistics s;
    s.dim = 2;
    s.tokens = 1;
    s.mean_abs = {1, 2};
    s.max_abs = {1, INFINITY};
    s.mean_square = {1, 4};
    EXPECT_THROW(writer.write(0, InputSpace::AttnInput, s), Error);
}

}  // namespace
}  // namespace sparq
