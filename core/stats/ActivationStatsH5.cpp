#include "stats/ActivationStatsH5.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <hdf5.h>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>

#include "common/AtomicFile.h"
#include "common/Error.h"
#include "common/H5Util.h"
#include "common/Progress.h"
#include "common/Version.h"

namespace qs::core {

namespace {

constexpr const char *kContent = "quantscope.activation_stats";
// Backstop for any one-dimensional dataset, above every length the attributes allow (cols, B + 1 edges).
constexpr hsize_t kMaxVectorValues = hsize_t(1) << 25;

using h5::childNames;
using h5::Ctx;
using h5::exists;
using h5::Handle;
using h5::QuietErrors;
using h5::readBoolAttr;
using h5::readDoubleAttr;
using h5::readInt64Attr;
using h5::readString;
using h5::readStringAttr;
using h5::readUInt64Attr;
using h5::stringType;
using h5::takeHdf5Message;
using h5::writeAttr;
using h5::writeBoolAttr;
using h5::writeStringDataset;

// --- writing -------------------------------------------------------------------------------------------------

void writeStringsAttr(
    const Ctx &ctx, hid_t loc, const std::string &where, const char *name, const std::vector<std::string> &values)
{
    Handle t = stringType(ctx);
    const hsize_t n = values.size();
    Handle space(ctx.check(H5Screate_simple(1, &n, nullptr), "cannot create a dataspace"), H5Sclose);
    Handle attr(ctx.check(H5Acreate2(loc, name, t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT),
                    "cannot create attribute " + where + "@" + name),
        H5Aclose);
    std::vector<const char *> ptrs;
    for (const std::string &s : values)
        ptrs.push_back(s.c_str());
    if (!ptrs.empty())
        ctx.ok(H5Awrite(attr.id(), t.id(), ptrs.data()), "cannot write attribute " + where + "@" + name);
}

void writeVector(const Ctx &ctx, hid_t loc, const std::string &where, const char *name, hid_t fileType, hid_t memType,
    size_t n, const void *data)
{
    const hsize_t dims = n;
    Handle space(ctx.check(H5Screate_simple(1, &dims, nullptr), "cannot create a dataspace"), H5Sclose);
    Handle ds(ctx.check(H5Dcreate2(loc, name, fileType, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create dataset " + where + "/" + name),
        H5Dclose);
    if (n > 0) // an empty dataset (no outliers) has no storage to write
        ctx.ok(H5Dwrite(ds.id(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
            "cannot write dataset " + where + "/" + name);
}

void writeHessian(const Ctx &ctx, hid_t loc, const std::string &where, const InputActivationStats &s)
{
    const hsize_t n = hsize_t(s.cols);
    const hsize_t dims[2] = { n, n };
    // Chunks of whole rows, about 1 MiB each (h5py guidance: 10 KiB - 1 MiB), so reading a row block
    // touches only the chunks it needs.
    const hsize_t rowsPerChunk = std::clamp<hsize_t>((hsize_t(1) << 17) / std::max<hsize_t>(n, 1), 1, n);
    const hsize_t chunk[2] = { rowsPerChunk, n };
    Handle space(ctx.check(H5Screate_simple(2, dims, nullptr), "cannot create a dataspace"), H5Sclose);
    Handle dcpl(ctx.check(H5Pcreate(H5P_DATASET_CREATE), "cannot create dataset properties"), H5Pclose);
    ctx.ok(H5Pset_chunk(dcpl.id(), 2, chunk), "cannot set chunking for " + where + "/hessian");
    Handle ds(ctx.check(H5Dcreate2(loc, "hessian", H5T_IEEE_F64LE, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT),
                  "cannot create dataset " + where + "/hessian"),
        H5Dclose);
    // Eigen stores column-major and the file is row-major; the matrix is symmetric, so the bytes agree.
    ctx.ok(H5Dwrite(ds.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.hessian.data()),
        "cannot write dataset " + where + "/hessian");
    writeAttr(ctx, ds.id(), where + "/hessian", "tokens", uint64_t(s.tokens));
    writeAttr(ctx, ds.id(), where + "/hessian", "definition",
        std::string("sum over tokens of x x^T (no factor 2, not averaged); GPTQ's H = 2/tokens times this"));
}

void writeInput(const Ctx &ctx, hid_t group, const std::string &where, const InputActivationStats &s)
{
    if (s.channelAbsMax.size() != size_t(s.cols) || s.channelMeanAbs.size() != size_t(s.cols)
        || s.channelMeanSquare.size() != size_t(s.cols) || s.outlierTokenShare.size() != s.outlierChannels.size()
        || (s.hasHessian && (s.hessian.rows() != s.cols || s.hessian.cols() != s.cols)))
        fail(ctx.path,
            where + ": inconsistent statistics (vector sizes do not match " + std::to_string(s.cols) + " columns)");

    writeAttr(ctx, group, where, "block", int64_t(s.block));
    writeAttr(ctx, group, where, "input", std::string(linearInputName(s.input)));
    writeStringsAttr(ctx, group, where, "layers", s.layers());
    writeAttr(ctx, group, where, "cols", int64_t(s.cols));
    writeAttr(ctx, group, where, "tokens", uint64_t(s.tokens));
    writeAttr(ctx, group, where, "non_finite_tokens", uint64_t(s.nonFiniteTokens));
    writeAttr(ctx, group, where, "min", s.min);
    writeAttr(ctx, group, where, "max", s.max);
    writeAttr(ctx, group, where, "absmax", s.absMax);
    writeAttr(ctx, group, where, "histogram_range", s.histogramRange);
    writeAttr(ctx, group, where, "outlier_factor", s.outlierFactor);
    writeAttr(ctx, group, where, "outlier_median", s.outlierMedian);
    writeAttr(ctx, group, where, "outlier_threshold", s.outlierThreshold);
    writeBoolAttr(ctx, group, where, "outlier_share_exact", s.outlierShareExact);
    writeBoolAttr(ctx, group, where, "has_hessian", s.hasHessian);

    const size_t cols = size_t(s.cols);
    writeVector(ctx, group, where, "channel_absmax", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, cols, s.channelAbsMax.data());
    writeVector(
        ctx, group, where, "channel_mean_abs", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, cols, s.channelMeanAbs.data());
    writeVector(
        ctx, group, where, "channel_mean_square", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, cols, s.channelMeanSquare.data());
    writeVector(ctx, group, where, "histogram_counts", H5T_STD_U64LE, H5T_NATIVE_UINT64, s.histogramCounts.size(),
        s.histogramCounts.data());
    const std::vector<double> edges = s.histogramEdges();
    writeVector(ctx, group, where, "histogram_edges", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, edges.size(), edges.data());
    writeVector(ctx, group, where, "outlier_channels", H5T_STD_I32LE, H5T_NATIVE_INT, s.outlierChannels.size(),
        s.outlierChannels.data());
    writeVector(ctx, group, where, "outlier_token_share", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s.outlierTokenShare.size(),
        s.outlierTokenShare.data());
    if (s.hasHessian)
        writeHessian(ctx, group, where, s);
}

std::string blockGroupName(int block)
{
    return block < 0 ? std::string("lm_head") : std::to_string(block);
}

// --- reading -------------------------------------------------------------------------------------------------

// Element types as the format states them (docs/hdf5-activation-stats.md), for checks and messages. Float
// datasets accept any integer or float type (HDF5 converts); counts and channel indices must be integers.
struct VectorSpec
{
    const char *name;
    bool integersOnly;
    const char *expected;
};
constexpr VectorSpec kChannelAbsMax { "channel_absmax", false, "float32 numbers" };
constexpr VectorSpec kChannelMeanAbs { "channel_mean_abs", false, "float64 numbers" };
constexpr VectorSpec kChannelMeanSquare { "channel_mean_square", false, "float64 numbers" };
constexpr VectorSpec kHistogramCounts { "histogram_counts", true, "uint64 counts" };
constexpr VectorSpec kHistogramEdges { "histogram_edges", false, "float64 numbers" };
constexpr VectorSpec kOutlierChannels { "outlier_channels", true, "int32 channel indices" };
constexpr VectorSpec kOutlierTokenShare { "outlier_token_share", false, "float64 numbers" };

// The length a rank-1 dataset must have: exactly `exact` when that is >= 0, else at most `max`.
struct Length
{
    int64_t exact = -1;
    int64_t max = 0;
    const char *maxReason = ""; // why max: "the histogram limit", "cols"
};

// Opens a dataset and checks its type and shape (rank 1, the length as given) before anything is allocated.
Handle openVector(const Ctx &ctx, hid_t loc, const std::string &where, const VectorSpec &spec, Length len, size_t &n)
{
    const std::string what = where + "/" + spec.name;
    if (!exists(loc, spec.name))
        fail(ctx.path, where + ": missing dataset " + spec.name);
    Handle ds(ctx.check(H5Dopen2(loc, spec.name, H5P_DEFAULT), "cannot open dataset " + what), H5Dclose);
    h5::requireNumericDataset(ctx, ds.id(), what, spec.integersOnly, spec.expected);
    Handle space(ctx.check(H5Dget_space(ds.id()), "cannot read the shape of " + what), H5Sclose);
    hsize_t dims[2] = { 0, 0 };
    const int rank = H5Sget_simple_extent_ndims(space.id());
    if (rank != 1)
        fail(ctx.path, what + " has " + std::to_string(rank) + " dimensions, expected 1");
    H5Sget_simple_extent_dims(space.id(), dims, nullptr);
    if (len.exact >= 0 && dims[0] != hsize_t(len.exact))
        fail(ctx.path, what + " has " + std::to_string(dims[0]) + " values, expected " + std::to_string(len.exact));
    if (len.exact < 0 && dims[0] > hsize_t(len.max))
        fail(ctx.path,
            what + " has " + std::to_string(dims[0]) + " values, more than " + len.maxReason + " ("
                + std::to_string(len.max) + ")");
    n = size_t(h5::checkedValueCount(ctx, what, { dims[0] }, kMaxVectorValues));
    return ds;
}

template <class T>
std::vector<T> readVector(
    const Ctx &ctx, hid_t loc, const std::string &where, const VectorSpec &spec, hid_t memType, Length len)
{
    size_t n = 0;
    Handle ds = openVector(ctx, loc, where, spec, len, n);
    std::vector<T> v(n);
    if (n > 0)
        ctx.ok(H5Dread(ds.id(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
            "cannot read dataset " + where + "/" + spec.name);
    return v;
}

Length exactly(int64_t n)
{
    return { n, 0, "" };
}

// The group's cols attribute: the channel count every per-channel dataset and the Hessian follow.
int64_t readCols(const Ctx &ctx, hid_t g, const std::string &where)
{
    const int64_t cols = readInt64Attr(ctx, g, where, "cols");
    if (cols <= 0 || cols > kActivationStatsMaxCols)
        fail(ctx.path,
            where + "@cols is " + std::to_string(cols) + ", outside 1.." + std::to_string(kActivationStatsMaxCols));
    return cols;
}

Eigen::MatrixXd readHessianDataset(const Ctx &ctx, hid_t group, const std::string &where, int64_t cols)
{
    const std::string what = where + "/hessian";
    if (!exists(group, "hessian"))
        fail(ctx.path, where + ": has no hessian");
    Handle ds(ctx.check(H5Dopen2(group, "hessian", H5P_DEFAULT), "cannot open dataset " + what), H5Dclose);
    h5::requireNumericDataset(ctx, ds.id(), what, false, "float64 numbers");
    Handle space(ctx.check(H5Dget_space(ds.id()), "cannot read the shape of " + what), H5Sclose);
    hsize_t dims[2] = { 0, 0 };
    if (H5Sget_simple_extent_ndims(space.id()) != 2)
        fail(ctx.path, what + " is not a matrix");
    H5Sget_simple_extent_dims(space.id(), dims, nullptr);
    if (dims[0] != hsize_t(cols) || dims[1] != hsize_t(cols))
        fail(ctx.path,
            what + " is " + std::to_string(dims[0]) + " x " + std::to_string(dims[1]) + ", expected "
                + std::to_string(cols) + " x " + std::to_string(cols));
    // cols is bounded, but cols² doubles can still be far more than a file of that size holds: a dataset
    // created with a shape and never written claims any size for free. A Hessian must be stored in full
    // (compression aside), so one whose storage is not (fully) allocated is refused before allocating.
    H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
    ctx.ok(H5Dget_space_status(ds.id(), &status), "cannot read the storage of " + what);
    if (status != H5D_SPACE_STATUS_ALLOCATED)
        fail(ctx.path,
            what + " holds no data (its " + std::to_string(cols) + " x " + std::to_string(cols)
                + " values were never written)");
    Eigen::MatrixXd h;
    try {
        h.resize(cols, cols);
    } catch (const std::bad_alloc &) {
        fail(ctx.path,
            what + " (" + std::to_string(cols) + " x " + std::to_string(cols) + " float64) does not fit in memory");
    }
    ctx.ok(H5Dread(ds.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, h.data()), "cannot read dataset " + what);
    h.transposeInPlace(); // file rows are row-major; exact even for a matrix that is not symmetric
    return h;
}

LinearInput parseInput(const Ctx &ctx, const std::string &where, const std::string &name)
{
    for (LinearInput in :
        { LinearInput::AttnIn, LinearInput::AttnOut, LinearInput::MlpIn, LinearInput::MlpAct, LinearInput::Head })
        if (name == linearInputName(in))
            return in;
    fail(ctx.path, where + ": unknown input kind '" + name + "'");
}

InputActivationStats readInput(const Ctx &ctx, hid_t g, const std::string &where, bool loadHessian)
{
    InputActivationStats s;
    const int64_t block = readInt64Attr(ctx, g, where, "block");
    if (block < -1 || block > std::numeric_limits<int>::max())
        fail(ctx.path,
            where + "@block is " + std::to_string(block) + ", outside -1.."
                + std::to_string(std::numeric_limits<int>::max()) + " (-1 is the lm_head input)");
    s.block = int(block);
    s.input = parseInput(ctx, where, readStringAttr(ctx, g, where, "input"));
    s.cols = readCols(ctx, g, where);
    s.tokens = readUInt64Attr(ctx, g, where, "tokens");
    s.nonFiniteTokens = readUInt64Attr(ctx, g, where, "non_finite_tokens");
    s.min = readDoubleAttr(ctx, g, where, "min");
    s.max = readDoubleAttr(ctx, g, where, "max");
    s.absMax = readDoubleAttr(ctx, g, where, "absmax");
    s.histogramRange = readDoubleAttr(ctx, g, where, "histogram_range");
    s.outlierFactor = readDoubleAttr(ctx, g, where, "outlier_factor");
    s.outlierMedian = readDoubleAttr(ctx, g, where, "outlier_median");
    s.outlierThreshold = readDoubleAttr(ctx, g, where, "outlier_threshold");
    s.outlierShareExact = readBoolAttr(ctx, g, where, "outlier_share_exact");
    s.hasHessian = readBoolAttr(ctx, g, where, "has_hessian");

    s.channelAbsMax = readVector<float>(ctx, g, where, kChannelAbsMax, H5T_NATIVE_FLOAT, exactly(s.cols));
    s.channelMeanAbs = readVector<double>(ctx, g, where, kChannelMeanAbs, H5T_NATIVE_DOUBLE, exactly(s.cols));
    s.channelMeanSquare = readVector<double>(ctx, g, where, kChannelMeanSquare, H5T_NATIVE_DOUBLE, exactly(s.cols));
    // The bin count B has no attribute of its own; the collector's limit bounds it.
    s.histogramCounts = readVector<uint64_t>(ctx, g, where, kHistogramCounts, H5T_NATIVE_UINT64,
        { -1, kMaxActivationHistogramBins, "the histogram bin limit" });
    // The edges follow from the range and the bin count; checking their count catches a truncated file.
    readVector<double>(
        ctx, g, where, kHistogramEdges, H5T_NATIVE_DOUBLE, exactly(int64_t(s.histogramCounts.size()) + 1));
    // Distinct channel indices, so at most cols of them, each in [0, cols). (HDF5 clips a wider integer type
    // to int32 on reading, and a clipped value lands outside that range.)
    s.outlierChannels = readVector<int>(ctx, g, where, kOutlierChannels, H5T_NATIVE_INT, { -1, s.cols, "cols" });
    for (size_t i = 0; i < s.outlierChannels.size(); ++i)
        if (s.outlierChannels[i] < 0 || s.outlierChannels[i] >= s.cols)
            fail(ctx.path,
                where + "/outlier_channels[" + std::to_string(i) + "] is " + std::to_string(s.outlierChannels[i])
                    + ", not a channel of 0.." + std::to_string(s.cols - 1));
    s.outlierTokenShare = readVector<double>(
        ctx, g, where, kOutlierTokenShare, H5T_NATIVE_DOUBLE, exactly(int64_t(s.outlierChannels.size())));
    if (s.hasHessian && loadHessian)
        s.hessian = readHessianDataset(ctx, g, where, s.cols);
    return s;
}

Handle openFile(const Ctx &ctx)
{
    if (H5Fis_hdf5(ctx.path.c_str()) <= 0) {
        takeHdf5Message();
        FILE *f = std::fopen(ctx.path.c_str(), "rb");
        if (!f)
            fail(ctx.path, "cannot open: " + std::string(std::strerror(errno)));
        std::fclose(f);
        fail(ctx.path, "is not an HDF5 file");
    }
    Handle file(ctx.check(H5Fopen(ctx.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open"), H5Fclose);
    const std::string where = "/";
    const int64_t version = readInt64Attr(ctx, file.id(), where, "format_version");
    if (version < 1)
        fail(ctx.path, "/@format_version is " + std::to_string(version) + ", not a format version");
    if (version > kActivationStatsFormatVersion)
        fail(ctx.path,
            "was written by a newer QuantScope (format_version " + std::to_string(version) + "; this build reads up to "
                + std::to_string(kActivationStatsFormatVersion) + ")");
    if (H5Aexists(file.id(), "content") > 0 && readStringAttr(ctx, file.id(), where, "content") != kContent)
        fail(ctx.path,
            "is not an activation statistics file (content is '" + readStringAttr(ctx, file.id(), where, "content")
                + "')");
    return file;
}

} // namespace

std::string activationGroupPath(int block, LinearInput input)
{
    return "/activations/" + blockGroupName(block) + "/" + linearInputName(input);
}

void writeActivationStatsH5(const std::string &path, const std::vector<InputActivationStats> &stats,
    const nlohmann::json &calibration, Progress *progress)
{
    const Ctx ctx { path };
    std::vector<const InputActivationStats *> order;
    for (const InputActivationStats &s : stats)
        order.push_back(&s);
    std::stable_sort(order.begin(), order.end(), [](const InputActivationStats *a, const InputActivationStats *b) {
        const int ba = a->block < 0 ? INT32_MAX : a->block;
        const int bb = b->block < 0 ? INT32_MAX : b->block;
        return ba != bb ? ba < bb : uint8_t(a->input) < uint8_t(b->input);
    });
    for (size_t i = 1; i < order.size(); ++i)
        if (order[i]->block == order[i - 1]->block && order[i]->input == order[i - 1]->input)
            fail(path, "two statistics for " + activationGroupPath(order[i]->block, order[i]->input));
    if (progress)
        progress->setTotal(double(order.size()));

    // The temporary file is named and removed by AtomicFile; HDF5 writes it by name, and AtomicFile's
    // commit() syncs it (same inode) and renames it into place.
    AtomicFile target(path);
    const QuietErrors quiet;
    {
        Handle file(ctx.check(H5Fcreate(target.tempPath().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create " + target.tempPath()),
            H5Fclose);
        {
            const hid_t root = file.id();
            writeAttr(ctx, root, "/", "format_version", int64_t(kActivationStatsFormatVersion));
            writeAttr(ctx, root, "/", "created_by", "QuantScope " + quantscopeVersion());
            writeAttr(ctx, root, "/", "content", std::string(kContent));

            Handle calib = ctx.group(root, "calibration", true);
            if (calibration.is_object()) {
                // Scalars also as attributes so h5py users see them at a glance; the JSON is authoritative.
                for (const auto &[key, value] : calibration.items()) {
                    if (value.is_string())
                        writeAttr(ctx, calib.id(), "/calibration", key.c_str(), value.get<std::string>());
                    else if (value.is_boolean())
                        writeBoolAttr(ctx, calib.id(), "/calibration", key.c_str(), value.get<bool>());
                    else if (value.is_number_unsigned())
                        writeAttr(ctx, calib.id(), "/calibration", key.c_str(), value.get<uint64_t>());
                    else if (value.is_number_integer())
                        writeAttr(ctx, calib.id(), "/calibration", key.c_str(), value.get<int64_t>());
                    else if (value.is_number_float())
                        writeAttr(ctx, calib.id(), "/calibration", key.c_str(), value.get<double>());
                }
            }
            writeStringDataset(ctx, calib.id(), "/calibration", "provenance_json", calibration.dump(2));

            Handle activations = ctx.group(root, "activations", true);
            Handle blockGroup;
            int currentBlock = 0;
            bool haveBlock = false;
            for (const InputActivationStats *s : order) {
                if (progress)
                    progress->throwIfCancelled();
                if (!haveBlock || s->block != currentBlock) {
                    blockGroup = ctx.group(activations.id(), blockGroupName(s->block), true);
                    currentBlock = s->block;
                    haveBlock = true;
                }
                const std::string where = activationGroupPath(s->block, s->input);
                Handle g = ctx.group(blockGroup.id(), linearInputName(s->input), true);
                writeInput(ctx, g.id(), where, *s);
                if (progress)
                    progress->advance(1.0);
            }
        }
        // Every object above is closed, so this close really flushes and releases the file.
        if (!file.close())
            ctx.failH5("cannot finish writing " + target.tempPath());
    }
    target.commit();
}

ActivationStatsFile readActivationStatsH5(const std::string &path, bool loadHessians)
{
    const Ctx ctx { path };
    const QuietErrors quiet;
    Handle file = openFile(ctx);
    ActivationStatsFile out;
    out.formatVersion = int(readInt64Attr(ctx, file.id(), "/", "format_version"));
    out.createdBy = readStringAttr(ctx, file.id(), "/", "created_by");
    if (exists(file.id(), "calibration")) {
        Handle calib = ctx.group(file.id(), "calibration", false);
        if (exists(calib.id(), "provenance_json")) {
            Handle ds(ctx.check(H5Dopen2(calib.id(), "provenance_json", H5P_DEFAULT),
                          "cannot open dataset /calibration/provenance_json"),
                H5Dclose);
            out.calibrationJson = readString(ctx, ds.id(), false, "/calibration/provenance_json");
        }
    }
    if (!exists(file.id(), "activations"))
        fail(path, "has no /activations group");
    Handle activations = ctx.group(file.id(), "activations", false);
    for (const std::string &blockName : childNames(ctx, activations.id(), "/activations")) {
        Handle blockGroup = ctx.group(activations.id(), blockName, false);
        const std::string blockWhere = "/activations/" + blockName;
        for (const std::string &inputName : childNames(ctx, blockGroup.id(), blockWhere)) {
            Handle g = ctx.group(blockGroup.id(), inputName, false);
            out.inputs.push_back(readInput(ctx, g.id(), blockWhere + "/" + inputName, loadHessians));
        }
    }
    // Names sort as text ("10" before "2"); return them in model order like the collector does.
    std::stable_sort(
        out.inputs.begin(), out.inputs.end(), [](const InputActivationStats &a, const InputActivationStats &b) {
            const int ba = a.block < 0 ? INT32_MAX : a.block;
            const int bb = b.block < 0 ? INT32_MAX : b.block;
            return ba != bb ? ba < bb : uint8_t(a.input) < uint8_t(b.input);
        });
    return out;
}

Eigen::MatrixXd readActivationHessian(const std::string &path, int block, LinearInput input)
{
    const Ctx ctx { path };
    const QuietErrors quiet;
    Handle file = openFile(ctx);
    const std::string where = activationGroupPath(block, input);
    if (!exists(file.id(), "activations"))
        fail(path, "has no /activations group");
    Handle activations = ctx.group(file.id(), "activations", false);
    const std::string blockName = blockGroupName(block);
    if (!exists(activations.id(), blockName.c_str()))
        fail(path, "has no statistics for " + where);
    Handle blockGroup = ctx.group(activations.id(), blockName, false);
    if (!exists(blockGroup.id(), linearInputName(input)))
        fail(path, "has no statistics for " + where);
    Handle g = ctx.group(blockGroup.id(), linearInputName(input), false);
    const int64_t cols = readCols(ctx, g.id(), where);
    return readHessianDataset(ctx, g.id(), where, cols);
}

} // namespace qs::core
