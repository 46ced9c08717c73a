#include "calibration/statistics_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <hdf5.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "calibration/calibration_data.h"
#include "core/error.h"

namespace sparq {

namespace {

constexpr const char* kFormat = "sparq calibration cache";
constexpr int64_t kVersion = 1;

// HDF5 prints its own error stack to stderr by default; sparq reports its
// own messages instead.
void silence_hdf5() {
    static const bool done = [] {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        return true;
    }();
    (void)done;
}

// Closes an HDF5 identifier with the matching function.
class Handle {
public:
    Handle() = default;
    Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    ~Handle() { reset(); }
    Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = o.id_;
            close_ = o.close_;
            o.id_ = -1;
        }
        return *this;
    }
    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    void reset() {
        if (id_ >= 0 && close_) close_(id_);
        id_ = -1;
    }

private:
    hid_t id_ = -1;
    herr_t (*close_)(hid_t) = nullptr;
};

std::string space_path(int64_t layer, InputSpace space) {
    return "/layers/" + std::to_string(layer) + "/" + input_space_name(space);
}

std::string checksum_of(const std::vector<float>& values) {
    return xxh64_checksum(values.data(), values.size() * sizeof(float));
}

// --- writing ---------------------------------------------------------------

void write_string_attribute(hid_t object, const char* name, const std::string& value, const std::string& file) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), std::max<size_t>(1, value.size()));
    H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    std::string padded = value.empty() ? std::string(1, '\0') : value;
    if (!attr.valid() || H5Awrite(attr.get(), type.get(), padded.data()) < 0) {
        fail_in({file, "", name}, "cannot write the attribute");
    }
}

void write_int_attribute(hid_t object, const char* name, int64_t value, const std::string& file) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) < 0) {
        fail_in({file, "", name}, "cannot write the attribute");
    }
}

void write_uint_attribute(hid_t object, const char* name, uint64_t value, const std::string& file) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(H5Acreate2(object, name, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_UINT64, &value) < 0) {
        fail_in({file, "", name}, "cannot write the attribute");
    }
}

void write_dataset(hid_t group, const char* name, const std::vector<double>& values, std::vector<hsize_t> dims,
                   const std::string& file, const std::string& where) {
    std::vector<float> f(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
        f[i] = static_cast<float>(values[i]);
        if (!std::isfinite(f[i])) {
            fail_in({file, "", where + "/" + name}, "the statistics are not finite (value ", values[i], " at ", i,
                    "): the model's activations overflow");
        }
    }
    Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    Handle ds(H5Dcreate2(group, name, H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
    if (!ds.valid() || H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f.data()) < 0) {
        fail_in({file, "", where + "/" + name}, "cannot write the dataset");
    }
    write_string_attribute(ds.get(), "xxh64", checksum_of(f), file);
}

Handle open_or_create_group(hid_t parent, const std::string& name) {
    if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) > 0) return Handle(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), H5Gclose);
    return Handle(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
}

// --- reading ---------------------------------------------------------------

std::string read_string_attribute(hid_t object, const char* name, const std::string& file, const std::string& where) {
    const ErrorContext context{file, "", where.empty() ? std::string(name) : where + "@" + name};
    if (H5Aexists(object, name) <= 0) fail_in(context, "missing attribute");
    Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!attr.valid() || !type.valid() || H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) != 0 ||
        H5Sget_simple_extent_type(space.get()) != H5S_SCALAR) {
        fail_in(context, "expected a fixed-length string");
    }
    const size_t size = H5Tget_size(type.get());
    if (size == 0 || size > 4096) fail_in(context, "string of ", size, " bytes (expected 1 to 4096)");
    std::vector<char> buffer(size + 1, '\0');
    if (H5Aread(attr.get(), type.get(), buffer.data()) < 0) fail_in(context, "cannot read the attribute");
    return std::string(buffer.data());
}

template <typename T>
T read_integer_attribute(hid_t object, const char* name, hid_t memory_type, const std::string& file,
                         const std::string& where) {
    const ErrorContext context{file, "", where.empty() ? std::string(name) : where + "@" + name};
    if (H5Aexists(object, name) <= 0) fail_in(context, "missing attribute");
    Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!attr.valid() || !type.valid() || H5Tget_class(type.get()) != H5T_INTEGER ||
        H5Sget_simple_extent_type(space.get()) != H5S_SCALAR) {
        fail_in(context, "expected a scalar integer");
    }
    T value{};
    if (H5Aread(attr.get(), memory_type, &value) < 0) fail_in(context, "cannot read the attribute");
    return value;
}

std::vector<float> read_dataset(hid_t group, const char* name, const std::vector<hsize_t>& dims,
                                const std::string& file, const std::string& where) {
    const ErrorContext context{file, "", where + "/" + name};
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0) fail_in(context, "missing dataset");
    Handle ds(H5Dopen2(group, name, H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) fail_in(context, "cannot open the dataset");
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    if (!type.valid() || H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4) {
        fail_in(context, "expected float32 values");
    }
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank != static_cast<int>(dims.size())) {
        fail_in(context, "has rank ", rank, ", expected ", dims.size());
    }
    std::vector<hsize_t> found(dims.size());
    H5Sget_simple_extent_dims(space.get(), found.data(), nullptr);
    if (found != dims) {
        std::string f, e;
        for (size_t i = 0; i < dims.size(); ++i) {
            if (i) {
                f += ", ";
                e += ", ";
            }
            f += std::to_string(found[i]);
            e += std::to_string(dims[i]);
        }
        fail_in(context, "has shape [", f, "], expected [", e, "] for this model");
    }
    size_t count = 1;
    for (hsize_t d : dims) count *= static_cast<size_t>(d);
    std::vector<float> values(count);
    if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
        fail_in(context, "cannot read the values (the file is damaged)");
    }
    const std::string expected = read_string_attribute(ds.get(), "xxh64", file, where + "/" + name);
    const std::string actual = checksum_of(values);
    if (expected != actual) {
        fail_in(context, "checksum mismatch (stored ", expected, ", data ", actual, "): the file is damaged");
    }
    for (size_t i = 0; i < count; ++i) {
        if (!std::isfinite(values[i])) fail_in(context, "value ", i, " is not finite");
    }
    return values;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

}  // namespace

std::optional<std::string> calibration_key_mismatch(const CalibrationKey& found, const CalibrationKey& wanted) {
    if (found.model_checksum != wanted.model_checksum) {
        return "it was computed for another model (" + found.model_checksum + ", this model is " +
               wanted.model_checksum + ")";
    }
    if (found.data_checksum != wanted.data_checksum) {
        return "it was computed from other calibration data (" + found.data_checksum + ", this data is " +
               wanted.data_checksum + ")";
    }
    if (found.samples != wanted.samples || found.len != wanted.len) {
        return "it holds " + calibration_samples_name(found.samples) + " samples x " + std::to_string(found.len) +
               " tokens, " + calibration_samples_name(wanted.samples) + " x " + std::to_string(wanted.len) +
               " were asked";
    }
    // Every window is taken in text order when all are asked: the seed draws nothing.
    if (found.seed != wanted.seed && wanted.samples != kAllCalibrationWindows) {
        return "it was drawn with seed " + std::to_string(found.seed) + ", seed " + std::to_string(wanted.seed) +
               " was asked";
    }
    return std::nullopt;
}

std::string model_checksum(const ModelSource& model) {
    XXH64_state_t* state = XXH64_createState();
    XXH64_reset(state, 0);
    const std::string config = config_to_json(model.config);
    XXH64_update(state, config.data(), config.size());
    for (const auto& [name, t] : model.tensors.all()) {
        XXH64_update(state, name.data(), name.size() + 1);
        const std::string dtype(dtype_name(t.dtype));
        XXH64_update(state, dtype.data(), dtype.size() + 1);
        XXH64_update(state, t.shape.data(), t.shape.size() * sizeof(int64_t));
        if (t.data && t.nbytes) XXH64_update(state, t.data, t.nbytes);
    }
    if (model.tokenizer) {
        const std::string kind = model.tokenizer->source_kind();
        XXH64_update(state, kind.data(), kind.size() + 1);
        const std::string& bytes = model.tokenizer->source_bytes();
        XXH64_update(state, bytes.data(), bytes.size());
    }
    const uint64_t digest = XXH64_digest(state);
    XXH64_freeState(state);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(digest));
    return std::string("xxh64:") + hex;
}

// --- writer ----------------------------------------------------------------

struct StatisticsCacheWriter::Impl {
    std::string path, temp_path;
    Handle file;
    bool committed = false;
};

StatisticsCacheWriter::StatisticsCacheWriter(std::string path, const CacheHeader& h) : impl_(std::make_unique<Impl>()) {
    silence_hdf5();
    impl_->path = std::move(path);
    const std::string& p = impl_->path;
    const auto slash = p.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
    std::string templ = dir + "/." + base + ".tmp.XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    const int fd = ::mkstemp(buf.data());
    if (fd < 0) fail_in({p, "", ""}, "cannot create a temporary file in ", dir, ": ", std::strerror(errno));
    ::close(fd);
    impl_->temp_path = buf.data();
    impl_->file = Handle(H5Fcreate(impl_->temp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!impl_->file.valid()) fail_in({p, "", ""}, "cannot create an HDF5 file at ", impl_->temp_path);
    const hid_t root = impl_->file.get();
    write_string_attribute(root, "format", kFormat, p);
    write_int_attribute(root, "version", kVersion, p);
    write_string_attribute(root, "model_checksum", h.key.model_checksum, p);
    write_string_attribute(root, "data_checksum", h.key.data_checksum, p);
    write_int_attribute(root, "samples", h.key.samples, p);
    write_int_attribute(root, "samples_drawn", h.samples_drawn, p);
    write_int_attribute(root, "len", h.key.len, p);
    write_uint_attribute(root, "seed", h.key.seed, p);
    write_int_attribute(root, "tokens", h.tokens, p);
    write_int_attribute(root, "num_layers", h.num_layers, p);
    write_int_attribute(root, "hidden_size", h.hidden_size, p);
    write_int_attribute(root, "intermediate_size", h.intermediate_size, p);
    write_int_attribute(root, "q_dim", h.q_dim, p);
    write_string_attribute(root, "data_path", h.data_path, p);
    write_string_attribute(root, "created_by", "sparq", p);
}

StatisticsCacheWriter::~StatisticsCacheWriter() {
    impl_->file.reset();
    if (!impl_->committed && !impl_->temp_path.empty()) ::unlink(impl_->temp_path.c_str());
}

void StatisticsCacheWriter::write(int64_t layer, InputSpace space, const ActivationStatistics& s) {
    const std::string& p = impl_->path;
    const std::string where = space_path(layer, space);
    Handle layers = open_or_create_group(impl_->file.get(), "layers");
    Handle block = layers.valid() ? open_or_create_group(layers.get(), std::to_string(layer)) : Handle();
    Handle group = block.valid() ? open_or_create_group(block.get(), input_space_name(space)) : Handle();
    if (!group.valid()) fail_in({p, "", where}, "cannot create the group");
    write_int_attribute(group.get(), "tokens", s.tokens, p);
    write_int_attribute(group.get(), "dim", s.dim, p);
    std::string linears;
    for (const std::string& l : input_space_linears(space)) {
        if (!linears.empty()) linears += ",";
        linears += l;
    }
    write_string_attribute(group.get(), "linears", linears, p);
    const hsize_t d = static_cast<hsize_t>(s.dim);
    if (!s.hessian.empty()) write_dataset(group.get(), "hessian", s.hessian, {d, d}, p, where);
    write_dataset(group.get(), "mean_abs", s.mean_abs, {d}, p, where);
    write_dataset(group.get(), "max_abs", s.max_abs, {d}, p, where);
    write_dataset(group.get(), "mean_square", s.mean_square, {d}, p, where);
}

void StatisticsCacheWriter::commit() {
    const std::string& p = impl_->path;
    if (H5Fflush(impl_->file.get(), H5F_SCOPE_GLOBAL) < 0) fail_in({p, "", ""}, "cannot flush the HDF5 file");
    impl_->file.reset();
    // mkstemp made it private; give it the permissions of a normal output.
    const int fd = ::open(impl_->temp_path.c_str(), O_RDONLY);
    if (fd >= 0) ::fchmod(fd, 0644);
    if (fd < 0 || ::fsync(fd) != 0) {
        if (fd >= 0) ::close(fd);
        fail_in({p, "", ""}, "cannot sync ", impl_->temp_path, ": ", std::strerror(errno));
    }
    ::close(fd);
    if (std::rename(impl_->temp_path.c_str(), p.c_str()) != 0) {
        fail_in({p, "", ""}, "cannot rename ", impl_->temp_path, " into place: ", std::strerror(errno));
    }
    impl_->committed = true;
}

// --- reader ----------------------------------------------------------------

struct StatisticsCacheReader::Impl {
    std::string path;
    Handle file;
    CacheHeader header;
};

StatisticsCacheReader::StatisticsCacheReader(std::string path) : impl_(std::make_unique<Impl>()) {
    silence_hdf5();
    impl_->path = std::move(path);
    const std::string& p = impl_->path;
    if (H5Fis_hdf5(p.c_str()) <= 0) fail_in({p, "", ""}, "not an HDF5 file (expected a sparq calibration cache)");
    impl_->file = Handle(H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!impl_->file.valid()) fail_in({p, "", ""}, "cannot open the HDF5 file (damaged?)");
    const hid_t root = impl_->file.get();
    const std::string format = read_string_attribute(root, "format", p, "");
    if (format != kFormat) fail_in({p, "", "format"}, "is '", format, "', expected '", kFormat, "'");
    const int64_t version = read_integer_attribute<int64_t>(root, "version", H5T_NATIVE_INT64, p, "");
    if (version != kVersion) fail_in({p, "", "version"}, "is ", version, ", this sparq reads version ", kVersion);
    CacheHeader& h = impl_->header;
    h.key.model_checksum = read_string_attribute(root, "model_checksum", p, "");
    h.key.data_checksum = read_string_attribute(root, "data_checksum", p, "");
    h.key.samples = read_integer_attribute<int64_t>(root, "samples", H5T_NATIVE_INT64, p, "");
    h.samples_drawn = read_integer_attribute<int64_t>(root, "samples_drawn", H5T_NATIVE_INT64, p, "");
    h.key.len = read_integer_attribute<int64_t>(root, "len", H5T_NATIVE_INT64, p, "");
    h.key.seed = read_integer_attribute<uint64_t>(root, "seed", H5T_NATIVE_UINT64, p, "");
    h.tokens = read_integer_attribute<int64_t>(root, "tokens", H5T_NATIVE_INT64, p, "");
    h.num_layers = read_integer_attribute<int64_t>(root, "num_layers", H5T_NATIVE_INT64, p, "");
    h.hidden_size = read_integer_attribute<int64_t>(root, "hidden_size", H5T_NATIVE_INT64, p, "");
    h.intermediate_size = read_integer_attribute<int64_t>(root, "intermediate_size", H5T_NATIVE_INT64, p, "");
    h.q_dim = read_integer_attribute<int64_t>(root, "q_dim", H5T_NATIVE_INT64, p, "");
    h.data_path = read_string_attribute(root, "data_path", p, "");
    if (h.key.samples < 1 || h.key.len < 1 || h.samples_drawn < 1 || h.samples_drawn > h.key.samples ||
        h.tokens != h.samples_drawn * h.key.len || h.num_layers < 1 || h.hidden_size < 1 ||
        h.intermediate_size < 1 || h.q_dim < 1) {
        fail_in({p, "", ""}, "inconsistent root attributes (samples ", h.key.samples, ", drawn ", h.samples_drawn,
                ", len ", h.key.len, ", tokens ", h.tokens, ")");
    }
}

StatisticsCacheReader::~StatisticsCacheReader() = default;

const CacheHeader& StatisticsCacheReader::header() const { return impl_->header; }

void StatisticsCacheReader::check_shape(const ModelConfig& c) const {
    const CacheHeader& h = impl_->header;
    if (h.num_layers != c.num_layers || h.hidden_size != c.hidden_size || h.intermediate_size != c.intermediate_size ||
        h.q_dim != c.q_dim()) {
        fail_in({impl_->path, "", ""}, "holds statistics for ", h.num_layers, " layers, hidden ", h.hidden_size,
                ", MLP ", h.intermediate_size, ", q ", h.q_dim, "; the model has ", c.num_layers, ", ", c.hidden_size,
                ", ", c.intermediate_size, ", ", c.q_dim());
    }
}

ActivationStatistics StatisticsCacheReader::read(int64_t layer, InputSpace space, int64_t dim, bool with_hessian) const {
    const std::string& p = impl_->path;
    const std::string where = space_path(layer, space);
    if (H5Lexists(impl_->file.get(), "/layers", H5P_DEFAULT) <= 0 ||
        H5Lexists(impl_->file.get(), ("/layers/" + std::to_string(layer)).c_str(), H5P_DEFAULT) <= 0 ||
        H5Lexists(impl_->file.get(), where.c_str(), H5P_DEFAULT) <= 0) {
        fail_in({p, "", where}, "missing group (the cache is incomplete)");
    }
    Handle group(H5Gopen2(impl_->file.get(), where.c_str(), H5P_DEFAULT), H5Gclose);
    if (!group.valid()) fail_in({p, "", where}, "cannot open the group");
    ActivationStatistics s;
    s.dim = dim;
    s.tokens = read_integer_attribute<int64_t>(group.get(), "tokens", H5T_NATIVE_INT64, p, where);
    const int64_t stored_dim = read_integer_attribute<int64_t>(group.get(), "dim", H5T_NATIVE_INT64, p, where);
    if (stored_dim != dim) fail_in({p, "", where + "@dim"}, "is ", stored_dim, ", expected ", dim);
    if (s.tokens < 1) fail_in({p, "", where + "@tokens"}, "is ", s.tokens, ", expected at least 1");
    const hsize_t d = static_cast<hsize_t>(dim);
    if (with_hessian) s.hessian = to_double(read_dataset(group.get(), "hessian", {d, d}, p, where));
    s.mean_abs = to_double(read_dataset(group.get(), "mean_abs", {d}, p, where));
    s.max_abs = to_double(read_dataset(group.get(), "max_abs", {d}, p, where));
    s.mean_square = to_double(read_dataset(group.get(), "mean_square", {d}, p, where));
    return s;
}

void StatisticsCacheReader::verify_all(const ModelConfig& config, bool with_hessian) const {
    check_shape(config);
    for (int64_t l = 0; l < config.num_layers; ++l) {
        for (InputSpace space : kInputSpaces) read(l, space, input_space_dim(config, space), with_hessian);
    }
}

}  // namespace sparq
