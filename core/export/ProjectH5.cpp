#include "export/ProjectH5.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <hdf5.h>
#include <limits>

#include "common/AtomicFile.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "common/Version.h"
#include "io/FormatRegistry.h"

namespace qs::core {

namespace fs = std::filesystem;

namespace {

// --- HDF5 plumbing (same conventions as stats/ActivationStatsH5.cpp) -----------------------------------------

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle
{
public:
    Handle() = default;
    Handle(hid_t id, herr_t (*close)(hid_t))
        : m_id(id)
        , m_close(close)
    { }
    ~Handle() { reset(); }
    Handle(Handle &&o) noexcept
        : m_id(o.m_id)
        , m_close(o.m_close)
    {
        o.m_id = -1;
    }
    Handle &operator=(Handle &&o) noexcept
    {
        if (this != &o) {
            reset();
            m_id = o.m_id;
            m_close = o.m_close;
            o.m_id = -1;
        }
        return *this;
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;

    hid_t id() const { return m_id; }
    bool close()
    {
        const bool ok = m_id < 0 || m_close(m_id) >= 0;
        m_id = -1;
        return ok;
    }

private:
    void reset()
    {
        if (m_id >= 0)
            m_close(m_id);
        m_id = -1;
    }

    hid_t m_id = -1;
    herr_t (*m_close)(hid_t) = nullptr;
};

// Silences HDF5's error-stack printing while a call runs; our messages carry the detail.
class QuietErrors
{
public:
    QuietErrors()
    {
        H5Eget_auto2(H5E_DEFAULT, &m_func, &m_data);
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
    ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, m_func, m_data); }
    QuietErrors(const QuietErrors &) = delete;
    QuietErrors &operator=(const QuietErrors &) = delete;

private:
    H5E_auto2_t m_func = nullptr;
    void *m_data = nullptr;
};

std::string takeHdf5Message()
{
    std::string msg;
    H5Ewalk2(
        H5E_DEFAULT, H5E_WALK_UPWARD,
        [](unsigned n, const H5E_error2_t *err, void *data) -> herr_t {
            if (n == 0 && err && err->desc)
                *static_cast<std::string *>(data) = err->desc;
            return 0;
        },
        &msg);
    H5Eclear2(H5E_DEFAULT);
    return msg;
}

struct Ctx
{
    std::string path;

    [[noreturn]] void failH5(const std::string &what) const
    {
        const std::string reason = takeHdf5Message();
        fail(path, reason.empty() ? what : what + " (HDF5: " + reason + ")");
    }
    hid_t check(hid_t id, const std::string &what) const
    {
        if (id < 0)
            failH5(what);
        return id;
    }
    void ok(herr_t status, const std::string &what) const
    {
        if (status < 0)
            failH5(what);
    }
};

bool exists(hid_t loc, const std::string &name)
{
    return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

// H5I_GROUP, H5I_DATASET, ... of a child object; H5I_BADID when it cannot be opened (a dangling link).
H5I_type_t objectType(hid_t loc, const std::string &name)
{
    const hid_t o = H5Oopen(loc, name.c_str(), H5P_DEFAULT);
    if (o < 0) {
        takeHdf5Message();
        return H5I_BADID;
    }
    const H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

std::string joinPath(const std::string &where, const std::string &name)
{
    return where == "/" ? "/" + name : where + "/" + name;
}

Handle createGroup(const Ctx &ctx, hid_t loc, const std::string &name, const std::string &where)
{
    if (name.empty() || name.find('/') != std::string::npos || name == ".")
        fail(ctx.path, "cannot store '" + name + "' under " + where + ": not a valid HDF5 object name");
    return Handle(ctx.check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create group " + where + "/" + name),
        H5Gclose);
}

Handle openGroup(const Ctx &ctx, hid_t loc, const std::string &name, const std::string &where)
{
    if (!exists(loc, name))
        fail(ctx.path, "missing group " + where + (where == "/" ? "" : "/") + name);
    if (objectType(loc, name) != H5I_GROUP)
        fail(ctx.path, where + (where == "/" ? "" : "/") + name + " is not a group");
    return Handle(ctx.check(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), "cannot open group " + where + "/" + name),
        H5Gclose);
}

Handle stringType(const Ctx &ctx)
{
    Handle t(ctx.check(H5Tcopy(H5T_C_S1), "cannot create the string type"), H5Tclose);
    ctx.ok(H5Tset_size(t.id(), H5T_VARIABLE), "cannot size the string type");
    ctx.ok(H5Tset_cset(t.id(), H5T_CSET_UTF8), "cannot set UTF-8 on the string type");
    ctx.ok(H5Tset_strpad(t.id(), H5T_STR_NULLTERM), "cannot set the string padding");
    return t;
}

// h5py maps an int8 enum {FALSE = 0, TRUE = 1} to numpy bool (formats.md §6).
Handle boolType(const Ctx &ctx)
{
    Handle t(ctx.check(H5Tenum_create(H5T_NATIVE_INT8), "cannot create the bool type"), H5Tclose);
    int8_t v = 0;
    ctx.ok(H5Tenum_insert(t.id(), "FALSE", &v), "cannot create the bool type");
    v = 1;
    ctx.ok(H5Tenum_insert(t.id(), "TRUE", &v), "cannot create the bool type");
    return t;
}

bool deflateAvailable()
{
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
        return false;
    unsigned config = 0;
    return H5Zget_filter_info(H5Z_FILTER_DEFLATE, &config) >= 0 && (config & H5Z_FILTER_CONFIG_ENCODE_ENABLED);
}

// --- writing -------------------------------------------------------------------------------------------------

struct Writer
{
    Ctx ctx;
    bool compress = false;

    void attr(hid_t loc, const std::string &where, const char *name, hid_t fileType, hid_t memType,
        const void *value) const
    {
        Handle space(ctx.check(H5Screate(H5S_SCALAR), "cannot create a dataspace"), H5Sclose);
        Handle a(ctx.check(H5Acreate2(loc, name, fileType, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                     "cannot create attribute " + where + "@" + name),
            H5Aclose);
        ctx.ok(H5Awrite(a.id(), memType, value), "cannot write attribute " + where + "@" + name);
    }
    void attr(hid_t loc, const std::string &where, const char *name, const std::string &value) const
    {
        if (value.find('\0') != std::string::npos)
            fail(ctx.path, where + "@" + name + ": text holds a NUL character");
        Handle t = stringType(ctx);
        const char *p = value.c_str();
        attr(loc, where, name, t.id(), t.id(), &p);
    }
    void attr(hid_t loc, const std::string &where, const char *name, const char *value) const
    {
        attr(loc, where, name, std::string(value));
    }
    void attr(hid_t loc, const std::string &where, const char *name, int64_t value) const
    {
        attr(loc, where, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
    }
    void attr(hid_t loc, const std::string &where, const char *name, int value) const
    {
        attr(loc, where, name, int64_t(value));
    }
    void attr(hid_t loc, const std::string &where, const char *name, uint64_t value) const
    {
        attr(loc, where, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
    }
    void attr(hid_t loc, const std::string &where, const char *name, double value) const
    {
        attr(loc, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
    }
    void boolAttr(hid_t loc, const std::string &where, const char *name, bool value) const
    {
        Handle t = boolType(ctx);
        const int8_t v = value ? 1 : 0;
        attr(loc, where, name, t.id(), t.id(), &v);
    }
    // Every top-level scalar of a JSON object as an attribute (arrays and objects stay in the JSON).
    void jsonScalarAttrs(hid_t loc, const std::string &where, const nlohmann::json &j) const
    {
        if (!j.is_object())
            return;
        for (const auto &[key, value] : j.items()) {
            if (key.empty())
                continue;
            if (value.is_string())
                attr(loc, where, key.c_str(), value.get<std::string>());
            else if (value.is_boolean())
                boolAttr(loc, where, key.c_str(), value.get<bool>());
            else if (value.is_number_unsigned())
                attr(loc, where, key.c_str(), value.get<uint64_t>());
            else if (value.is_number_integer())
                attr(loc, where, key.c_str(), value.get<int64_t>());
            else if (value.is_number_float())
                attr(loc, where, key.c_str(), value.get<double>());
        }
    }

    void text(hid_t loc, const std::string &where, const char *name, const std::string &value) const
    {
        if (value.find('\0') != std::string::npos)
            fail(ctx.path, where + "/" + name + ": text holds a NUL character");
        Handle t = stringType(ctx);
        Handle space(ctx.check(H5Screate(H5S_SCALAR), "cannot create a dataspace"), H5Sclose);
        Handle ds(ctx.check(H5Dcreate2(loc, name, t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create dataset " + where + "/" + name),
            H5Dclose);
        const char *p = value.c_str();
        ctx.ok(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p),
            "cannot write dataset " + where + "/" + name);
    }
    void json(hid_t loc, const std::string &where, const char *name, const nlohmann::json &j) const
    {
        text(loc, where, name, j.dump(2));
    }

    void strings(hid_t loc, const std::string &where, const char *name, const std::vector<std::string> &values) const
    {
        Handle t = stringType(ctx);
        const hsize_t n = values.size();
        Handle space(ctx.check(H5Screate_simple(1, &n, nullptr), "cannot create a dataspace"), H5Sclose);
        Handle ds(ctx.check(H5Dcreate2(loc, name, t.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create dataset " + where + "/" + name),
            H5Dclose);
        std::vector<const char *> ptrs;
        for (const std::string &s : values) {
            if (s.find('\0') != std::string::npos)
                fail(ctx.path, where + "/" + name + ": text holds a NUL character");
            ptrs.push_back(s.c_str());
        }
        if (n > 0)
            ctx.ok(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
                "cannot write dataset " + where + "/" + name);
    }

    // A 1-D or 2-D numeric dataset. Large ones (tensors) are chunked by whole rows (about 1 MiB per chunk)
    // and, when the library can encode deflate, shuffled and compressed.
    void array(hid_t loc, const std::string &where, const char *name, hid_t fileType, hid_t memType,
        std::vector<hsize_t> dims, const void *data, bool chunked = false) const
    {
        Handle space(ctx.check(H5Screate_simple(int(dims.size()), dims.data(), nullptr), "cannot create a dataspace"),
            H5Sclose);
        Handle dcpl(ctx.check(H5Pcreate(H5P_DATASET_CREATE), "cannot create dataset properties"), H5Pclose);
        hsize_t total = 1;
        for (hsize_t d : dims)
            total *= d;
        if (chunked && total > 0) {
            const size_t elem = H5Tget_size(fileType);
            hsize_t rowBytes = elem;
            for (size_t i = 1; i < dims.size(); ++i)
                rowBytes *= dims[i];
            std::vector<hsize_t> chunk = dims;
            chunk[0] = std::clamp<hsize_t>((hsize_t(1) << 20) / std::max<hsize_t>(rowBytes, 1), 1, dims[0]);
            ctx.ok(H5Pset_chunk(dcpl.id(), int(chunk.size()), chunk.data()),
                "cannot set chunking for " + where + "/" + name);
            if (compress) {
                if (elem > 1)
                    ctx.ok(H5Pset_shuffle(dcpl.id()), "cannot set the shuffle filter for " + where + "/" + name);
                ctx.ok(H5Pset_deflate(dcpl.id(), 4), "cannot set deflate for " + where + "/" + name);
            }
        }
        Handle ds(ctx.check(H5Dcreate2(loc, name, fileType, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT),
                      "cannot create dataset " + where + "/" + name),
            H5Dclose);
        if (total > 0)
            ctx.ok(H5Dwrite(ds.id(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                "cannot write dataset " + where + "/" + name);
    }
    template <class T>
    void vec(hid_t loc, const std::string &where, const char *name, hid_t fileType, hid_t memType,
        const std::vector<T> &v, bool chunked = false) const
    {
        array(loc, where, name, fileType, memType, { hsize_t(v.size()) }, v.data(), chunked);
    }
};

void writeModel(const Writer &w, hid_t root, const ProjectModelRef &m)
{
    Handle g = createGroup(w.ctx, root, "model", "");
    const std::string where = "/model";
    w.attr(g.id(), where, "path", m.path);
    w.attr(g.id(), where, "absolute_path", m.absolutePath);
    w.attr(g.id(), where, "format", m.format);
    w.attr(g.id(), where, "sha256", m.sha256);
    w.attr(g.id(), where, "parameters", m.parameters);
    std::vector<std::string> names, hashes;
    std::vector<uint64_t> bytes;
    for (const ModelFileHash &f : m.files) {
        names.push_back(f.file);
        hashes.push_back(f.sha256);
        bytes.push_back(f.bytes);
    }
    w.strings(g.id(), where, "file_names", names);
    w.vec(g.id(), where, "file_bytes", H5T_STD_U64LE, H5T_NATIVE_UINT64, bytes);
    w.strings(g.id(), where, "file_sha256", hashes);
}

void writeHistogram(const Writer &w, hid_t g, const std::string &where, const char *name, const Histogram &h)
{
    w.vec(g, where, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, h.counts);
    Handle ds(w.ctx.check(H5Dopen2(g, name, H5P_DEFAULT), "cannot open dataset " + where + "/" + name), H5Dclose);
    const std::string dsWhere = where + "/" + name;
    w.attr(ds.id(), dsWhere, "lo", h.lo);
    w.attr(ds.id(), dsWhere, "hi", h.hi);
    w.attr(ds.id(), dsWhere, "scale", h.scale);
    const std::vector<double> edges = h.counts.empty() ? std::vector<double>() : histogramEdges(h);
    w.vec(g, where, (std::string(name) + "_edges").c_str(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, edges);
}

void writeStats(const Writer &w, hid_t parent, const WeightStats &s, int64_t index)
{
    const std::string where = "/statistics/weights/" + s.name;
    if (s.rowAbsMax.size() != size_t(std::max<int64_t>(s.rows, 0))
        || s.colAbsMax.size() != size_t(std::max<int64_t>(s.cols, 0)))
        fail(w.ctx.path, where + ": inconsistent statistics (channel vectors do not match the shape)");
    Handle g = createGroup(w.ctx, parent, s.name, "/statistics/weights");
    const hid_t id = g.id();
    w.attr(id, where, "index", index);
    w.attr(id, where, "rows", s.rows);
    w.attr(id, where, "cols", s.cols);
    w.attr(id, where, "count", s.count);
    w.attr(id, where, "nan_count", s.nanCount);
    w.attr(id, where, "inf_count", s.infCount);
    w.attr(id, where, "zero_count", s.zeroCount);
    w.attr(id, where, "min", s.min);
    w.attr(id, where, "max", s.max);
    w.attr(id, where, "absmax", s.absMax);
    w.attr(id, where, "mean", s.mean);
    w.attr(id, where, "stddev", s.stddev);
    w.attr(id, where, "skewness", s.skewness);
    w.attr(id, where, "kurtosis", s.kurtosis);
    w.attr(id, where, "outlier_sigma", s.outlierSigma);
    w.attr(id, where, "outlier_threshold", s.outlierThreshold);
    w.attr(id, where, "outlier_count", s.outlierCount);
    w.attr(id, where, "outlier_fraction", s.outlierFraction);
    writeHistogram(w, id, where, "linear_histogram", s.linearHistogram);
    writeHistogram(w, id, where, "symlog_histogram", s.symlogHistogram);
    w.vec(id, where, "row_absmax", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s.rowAbsMax);
    w.vec(id, where, "col_absmax", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s.colAbsMax);
    std::vector<int64_t> rows, cols;
    std::vector<float> values;
    for (const OutlierPosition &o : s.topOutliers) {
        rows.push_back(o.row);
        cols.push_back(o.col);
        values.push_back(o.value);
    }
    w.vec(id, where, "top_outliers_row", H5T_STD_I64LE, H5T_NATIVE_INT64, rows);
    w.vec(id, where, "top_outliers_col", H5T_STD_I64LE, H5T_NATIVE_INT64, cols);
    w.vec(id, where, "top_outliers_value", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values);
}

std::string runGroupName(size_t index)
{
    char buf[24];
    std::snprintf(buf, sizeof buf, "%03zu", index);
    return buf;
}

void writeLayers(const Writer &w, hid_t run, const std::string &runWhere, const std::vector<LayerResult> &layers)
{
    Handle g = createGroup(w.ctx, run, "layers", runWhere);
    const std::string where = runWhere + "/layers";
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<std::string> name, role, method, inputScales, note;
    std::vector<int32_t> block, bits, groupSize, deadColumns, activationBits;
    std::vector<double> mse, rel, sqnr, loss, damp, bpw, seconds;
    for (const LayerResult &l : layers) {
        name.push_back(l.name);
        role.push_back(roleName(l.role));
        method.push_back(l.method);
        inputScales.push_back(l.inputScales);
        note.push_back(l.note);
        block.push_back(l.block);
        bits.push_back(l.bits);
        groupSize.push_back(l.groupSize);
        deadColumns.push_back(l.deadColumns);
        activationBits.push_back(l.activationBits);
        mse.push_back(l.weightMse);
        rel.push_back(l.relOutputError);
        sqnr.push_back(l.sqnrDb);
        loss.push_back(l.gptqLoss.value_or(nan));
        damp.push_back(l.damp.value_or(nan));
        bpw.push_back(l.bitsPerWeight);
        seconds.push_back(l.seconds);
    }
    const hid_t id = g.id();
    w.strings(id, where, "name", name);
    w.vec(id, where, "block", H5T_STD_I32LE, H5T_NATIVE_INT32, block);
    w.strings(id, where, "role", role);
    w.strings(id, where, "method", method);
    w.vec(id, where, "bits", H5T_STD_I32LE, H5T_NATIVE_INT32, bits);
    w.vec(id, where, "group_size", H5T_STD_I32LE, H5T_NATIVE_INT32, groupSize);
    w.vec(id, where, "weight_mse", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, mse);
    w.vec(id, where, "rel_output_error", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rel);
    w.vec(id, where, "sqnr_db", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sqnr);
    w.vec(id, where, "gptq_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, loss);
    w.vec(id, where, "damp", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, damp);
    w.vec(id, where, "dead_columns", H5T_STD_I32LE, H5T_NATIVE_INT32, deadColumns);
    w.vec(id, where, "bits_per_weight", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, bpw);
    w.vec(id, where, "seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, seconds);
    w.vec(id, where, "activation_bits", H5T_STD_I32LE, H5T_NATIVE_INT32, activationBits);
    w.strings(id, where, "input_scales", inputScales);
    w.strings(id, where, "note", note);
}

void writeBlocks(const Writer &w, hid_t run, const std::string &runWhere, const std::vector<BlockResult> &blocks)
{
    Handle g = createGroup(w.ctx, run, "blocks", runWhere);
    const std::string where = runWhere + "/blocks";
    std::vector<int32_t> block;
    std::vector<double> err, seconds;
    for (const BlockResult &b : blocks) {
        block.push_back(b.block);
        err.push_back(b.cumulativeError);
        seconds.push_back(b.seconds);
    }
    w.vec(g.id(), where, "block", H5T_STD_I32LE, H5T_NATIVE_INT32, block);
    w.vec(g.id(), where, "cumulative_error", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, err);
    w.vec(g.id(), where, "seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, seconds);
}

void writeEvaluation(const Writer &w, hid_t run, const std::string &runWhere, const RunEvaluation &e)
{
    Handle g = createGroup(w.ctx, run, "evaluation", runWhere);
    const std::string where = runWhere + "/evaluation";
    const hid_t id = g.id();
    w.attr(id, where, "text", e.textPath);
    w.attr(id, where, "text_sha256", e.textSha256);
    w.attr(id, where, "protocol", e.protocol);
    w.attr(id, where, "ctx", e.ctx);
    w.attr(id, where, "chunks", e.chunks);
    w.attr(id, where, "tokens_scored", e.tokensScored);
    w.attr(id, where, "perplexity", e.perplexity);
    w.attr(id, where, "original_perplexity", e.originalPerplexity);
    w.boolAttr(id, where, "has_kld", e.hasKld);
    w.attr(id, where, "kld_mean", e.kldMean);
    w.attr(id, where, "kld_median", e.kldMedian);
    w.attr(id, where, "kld_p99", e.kldP99);
    w.attr(id, where, "kld_max", e.kldMax);
    w.attr(id, where, "top1_agreement", e.top1Agreement);
}

void writeTensor(const Writer &w, hid_t parent, const std::string &parentWhere, const QuantizedTensor &t, int64_t index)
{
    const std::string where = parentWhere + "/" + t.name;
    const size_t groups = size_t(t.rows) * size_t(t.numGroups());
    if (t.codes.size() != size_t(t.rows * t.cols) || t.scales.size() != groups || t.zeros.size() != groups
        || t.gIdx.size() != size_t(t.cols) || (!t.inputScales.empty() && t.inputScales.size() != size_t(t.cols)))
        fail(w.ctx.path, where + ": inconsistent quantized tensor (array sizes do not match its shape)");
    Handle g = createGroup(w.ctx, parent, t.name, parentWhere);
    const hid_t id = g.id();
    w.attr(id, where, "index", index);
    w.attr(id, where, "method", t.method);
    w.attr(id, where, "rows", t.rows);
    w.attr(id, where, "cols", t.cols);
    w.attr(id, where, "bits", t.bits);
    w.attr(id, where, "group_size", t.groupSize);
    w.attr(id, where, "row_group_size", t.rowGroupSize);
    w.attr(id, where, "num_groups", t.numGroups());
    w.attr(id, where, "grid", gridInfo(t.grid).name);
    w.boolAttr(id, where, "symmetric", t.symmetric);
    w.attr(id, where, "convention", symConventionName(t.convention));
    w.attr(id, where, "rounding", roundingModeName(t.rounding));
    w.attr(id, where, "zero_kind", zeroPointKindName(t.zeroKind));
    w.attr(id, where, "input_scales_source", t.inputScalesSource);
    w.attr(id, where, "bits_per_weight", t.bitsPerWeight());
    const hsize_t rows = hsize_t(t.rows), cols = hsize_t(t.cols), ng = hsize_t(t.numGroups());
    w.array(id, where, "codes", H5T_STD_U8LE, H5T_NATIVE_UINT8, { rows, cols }, t.codes.data(), true);
    w.array(id, where, "scales", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, { rows, ng }, t.scales.data(), true);
    w.array(id, where, "zeros", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, { rows, ng }, t.zeros.data(), true);
    w.vec(id, where, "g_idx", H5T_STD_I32LE, H5T_NATIVE_INT32, t.gIdx);
    if (!t.inputScales.empty())
        w.vec(id, where, "input_scales", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.inputScales);
}

void writeRun(const Writer &w, hid_t runs, const ProjectRun &r, size_t index, Progress &progress)
{
    const std::string name = runGroupName(index);
    const std::string where = "/runs/" + name;
    Handle g = createGroup(w.ctx, runs, name, "/runs");
    const hid_t id = g.id();
    w.attr(id, where, "index", int64_t(index));
    w.attr(id, where, "name", r.name);
    w.attr(id, where, "run_dir", r.runDir);
    w.attr(id, where, "bits_per_weight", r.bitsPerWeight);
    w.attr(id, where, "seconds", r.seconds);
    w.attr(id, where, "model_sha256", r.provenance.modelSha256);
    w.boolAttr(id, where, "has_tensors", !r.tensors.empty());
    w.json(id, where, "plan_json", r.plan);
    w.json(id, where, "provenance_json", r.provenance.toJson());
    w.json(id, where, "activation_quant_json", r.activationQuant.toJson());
    w.strings(id, where, "warnings", r.warnings);
    writeLayers(w, id, where, r.layers);
    writeBlocks(w, id, where, r.blocks);
    if (r.evaluation)
        writeEvaluation(w, id, where, *r.evaluation);
    if (r.tensors.empty() && r.modifiedTensors.empty())
        return;
    Handle tensors = createGroup(w.ctx, id, "tensors", where);
    int64_t i = 0;
    for (const QuantizedTensor &t : r.tensors) {
        progress.throwIfCancelled();
        writeTensor(w, tensors.id(), where + "/tensors", t, i++);
        progress.advance(1.0);
    }
    Handle modified = createGroup(w.ctx, id, "modified", where);
    i = 0;
    for (const auto &[tname, values] : r.modifiedTensors) {
        progress.throwIfCancelled();
        w.vec(modified.id(), where + "/modified", tname.c_str(), H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values, true);
        Handle ds(w.ctx.check(H5Dopen2(modified.id(), tname.c_str(), H5P_DEFAULT),
                      "cannot open dataset " + where + "/modified/" + tname),
            H5Dclose);
        w.attr(ds.id(), where + "/modified/" + tname, "index", i++);
        progress.advance(1.0);
    }
}

std::string utcNow()
{
    const std::time_t now = std::time(nullptr);
    std::tm tm {};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// --- reading -------------------------------------------------------------------------------------------------

struct Reader
{
    Ctx ctx;

    Handle openAttr(hid_t loc, const std::string &where, const char *name) const
    {
        if (H5Aexists(loc, name) <= 0) {
            takeHdf5Message();
            fail(ctx.path, where + ": missing attribute " + name);
        }
        return Handle(ctx.check(H5Aopen(loc, name, H5P_DEFAULT), "cannot open attribute " + where + "@" + name),
            H5Aclose);
    }
    std::string stringFrom(hid_t obj, bool isAttr, const std::string &what) const
    {
        Handle ftype(
            ctx.check(isAttr ? H5Aget_type(obj) : H5Dget_type(obj), "cannot read the type of " + what), H5Tclose);
        if (H5Tget_class(ftype.id()) != H5T_STRING)
            fail(ctx.path, what + " is not a string");
        Handle space(ctx.check(isAttr ? H5Aget_space(obj) : H5Dget_space(obj), "cannot read the shape of " + what),
            H5Sclose);
        if (H5Sget_simple_extent_ndims(space.id()) != 0)
            fail(ctx.path, what + " is not a single string");
        if (H5Tis_variable_str(ftype.id()) > 0) {
            Handle mtype = stringType(ctx);
            char *buffer = nullptr;
            ctx.ok(isAttr ? H5Aread(obj, mtype.id(), &buffer)
                          : H5Dread(obj, mtype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &buffer),
                "cannot read " + what);
            std::string s = buffer ? buffer : "";
            H5free_memory(buffer);
            return s;
        }
        const size_t size = H5Tget_size(ftype.id());
        std::string s(size + 1, '\0');
        ctx.ok(isAttr ? H5Aread(obj, ftype.id(), s.data())
                      : H5Dread(obj, ftype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data()),
            "cannot read " + what);
        s.resize(std::strlen(s.c_str()));
        return s;
    }
    std::string str(hid_t loc, const std::string &where, const char *name) const
    {
        Handle a = openAttr(loc, where, name);
        return stringFrom(a.id(), true, where + "@" + name);
    }
    template <class T>
    T num(hid_t loc, const std::string &where, const char *name, hid_t memType) const
    {
        Handle a = openAttr(loc, where, name);
        Handle space(ctx.check(H5Aget_space(a.id()), "cannot read the shape of " + where + "@" + name), H5Sclose);
        if (H5Sget_simple_extent_npoints(space.id()) != 1)
            fail(ctx.path, where + "@" + name + " is not a single value");
        Handle ftype(ctx.check(H5Aget_type(a.id()), "cannot read the type of " + where + "@" + name), H5Tclose);
        const H5T_class_t cls = H5Tget_class(ftype.id());
        if (cls != H5T_INTEGER && cls != H5T_FLOAT)
            fail(ctx.path, where + "@" + name + " is not a number");
        T v {};
        ctx.ok(H5Aread(a.id(), memType, &v), "cannot read attribute " + where + "@" + name);
        return v;
    }
    int64_t i64(hid_t loc, const std::string &where, const char *name) const
    {
        return num<int64_t>(loc, where, name, H5T_NATIVE_INT64);
    }
    uint64_t u64(hid_t loc, const std::string &where, const char *name) const
    {
        return num<uint64_t>(loc, where, name, H5T_NATIVE_UINT64);
    }
    double f64(hid_t loc, const std::string &where, const char *name) const
    {
        return num<double>(loc, where, name, H5T_NATIVE_DOUBLE);
    }
    int i32(hid_t loc, const std::string &where, const char *name, int64_t lo, int64_t hi) const
    {
        const int64_t v = i64(loc, where, name);
        if (v < lo || v > hi)
            fail(ctx.path,
                where + "@" + name + " is " + std::to_string(v) + ", outside " + std::to_string(lo) + ".."
                    + std::to_string(hi));
        return int(v);
    }
    bool boolean(hid_t loc, const std::string &where, const char *name) const
    {
        Handle a = openAttr(loc, where, name);
        Handle ftype(ctx.check(H5Aget_type(a.id()), "cannot read the type of " + where + "@" + name), H5Tclose);
        int8_t v = 0;
        if (H5Tget_class(ftype.id()) == H5T_ENUM) {
            Handle t = boolType(ctx);
            ctx.ok(H5Aread(a.id(), t.id(), &v), "cannot read attribute " + where + "@" + name);
        } else if (H5Tget_class(ftype.id()) == H5T_INTEGER) {
            ctx.ok(H5Aread(a.id(), H5T_NATIVE_INT8, &v), "cannot read attribute " + where + "@" + name);
        } else {
            fail(ctx.path, where + "@" + name + " is not a bool");
        }
        return v != 0;
    }

    Handle openDataset(hid_t loc, const std::string &where, const std::string &name) const
    {
        const std::string full = where + (where == "/" ? "" : "/") + name;
        if (!exists(loc, name))
            fail(ctx.path, "missing dataset " + full);
        if (objectType(loc, name) != H5I_DATASET)
            fail(ctx.path, full + " is not a dataset");
        return Handle(ctx.check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), "cannot open dataset " + full), H5Dclose);
    }
    std::string text(hid_t loc, const std::string &where, const char *name) const
    {
        Handle ds = openDataset(loc, where, name);
        return stringFrom(ds.id(), false, joinPath(where, name));
    }
    nlohmann::json json(hid_t loc, const std::string &where, const char *name) const
    {
        const std::string t = text(loc, where, name);
        try {
            return nlohmann::json::parse(t);
        } catch (const nlohmann::json::exception &e) {
            fail(ctx.path, joinPath(where, name) + ": not valid JSON: " + e.what());
        }
    }
    // Shape of a dataset, checked against expected (entries < 0 match any length).
    std::vector<hsize_t> shape(hid_t ds, const std::string &what, const std::vector<int64_t> &expected) const
    {
        Handle space(ctx.check(H5Dget_space(ds), "cannot read the shape of " + what), H5Sclose);
        const int rank = H5Sget_simple_extent_ndims(space.id());
        if (rank != int(expected.size()))
            fail(ctx.path,
                what + " has " + std::to_string(rank) + " dimensions, expected " + std::to_string(expected.size()));
        std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
        if (rank > 0)
            H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
        for (size_t i = 0; i < dims.size(); ++i)
            if (expected[i] >= 0 && dims[i] != hsize_t(expected[i])) {
                std::string got, want;
                for (size_t k = 0; k < dims.size(); ++k) {
                    got += (k ? " x " : "") + std::to_string(dims[k]);
                    want += (k ? " x " : "") + (expected[k] < 0 ? std::string("any") : std::to_string(expected[k]));
                }
                fail(ctx.path, what + " is " + got + ", expected " + want);
            }
        return dims;
    }
    template <class T>
    std::vector<T> array(hid_t loc, const std::string &where, const char *name, hid_t memType,
        const std::vector<int64_t> &expected) const
    {
        Handle ds = openDataset(loc, where, name);
        const std::string what = where + "/" + name;
        Handle ftype(ctx.check(H5Dget_type(ds.id()), "cannot read the type of " + what), H5Tclose);
        const H5T_class_t cls = H5Tget_class(ftype.id());
        if (cls != H5T_INTEGER && cls != H5T_FLOAT)
            fail(ctx.path, what + " is not numeric");
        const std::vector<hsize_t> dims = shape(ds.id(), what, expected);
        hsize_t total = 1;
        for (hsize_t d : dims)
            total *= d;
        if (total > (hsize_t(1) << 40))
            fail(ctx.path, what + " is implausibly large");
        std::vector<T> v(static_cast<size_t>(total));
        if (total > 0)
            ctx.ok(H5Dread(ds.id(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "cannot read dataset " + what);
        return v;
    }
    std::vector<std::string> strings(hid_t loc, const std::string &where, const char *name, int64_t expected) const
    {
        Handle ds = openDataset(loc, where, name);
        const std::string what = where + "/" + name;
        Handle ftype(ctx.check(H5Dget_type(ds.id()), "cannot read the type of " + what), H5Tclose);
        if (H5Tget_class(ftype.id()) != H5T_STRING || H5Tis_variable_str(ftype.id()) <= 0)
            fail(ctx.path, what + " is not an array of variable-length strings");
        const std::vector<hsize_t> dims = shape(ds.id(), what, { expected });
        std::vector<std::string> out;
        if (dims[0] == 0)
            return out;
        Handle mtype = stringType(ctx);
        std::vector<char *> ptrs(size_t(dims[0]), nullptr);
        ctx.ok(H5Dread(ds.id(), mtype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "cannot read dataset " + what);
        for (char *p : ptrs)
            out.emplace_back(p ? p : "");
        Handle space(ctx.check(H5Dget_space(ds.id()), "cannot read the shape of " + what), H5Sclose);
        H5Dvlen_reclaim(mtype.id(), space.id(), H5P_DEFAULT, ptrs.data());
        return out;
    }

    std::vector<std::string> children(hid_t group, const std::string &where) const
    {
        H5G_info_t info {};
        ctx.ok(H5Gget_info(group, &info), "cannot list " + where);
        std::vector<std::string> names;
        for (hsize_t i = 0; i < info.nlinks; ++i) {
            const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
            if (len < 0)
                ctx.failH5("cannot list " + where);
            std::string name(size_t(len) + 1, '\0');
            H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
            name.resize(size_t(len));
            names.push_back(name);
        }
        return names;
    }
};

TensorRole parseRole(const Reader &r, const std::string &what, const std::string &name)
{
    for (TensorRole role :
        { TensorRole::Embed, TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::O, TensorRole::Gate,
            TensorRole::Up, TensorRole::Down, TensorRole::Norm, TensorRole::LmHead, TensorRole::Bias })
        if (name == roleName(role))
            return role;
    fail(r.ctx.path, what + ": unknown role '" + name + "'");
}

template <class E>
E parseName(const Reader &r, const std::string &what, const std::string &name, std::initializer_list<E> all,
    const char *(*nameOf)(E))
{
    for (E e : all)
        if (name == nameOf(e))
            return e;
    fail(r.ctx.path, what + ": unknown value '" + name + "'");
}

ProjectModelRef readModel(const Reader &r, hid_t root)
{
    Handle g = openGroup(r.ctx, root, "model", "/");
    const std::string where = "/model";
    ProjectModelRef m;
    m.path = r.str(g.id(), where, "path");
    m.absolutePath = r.str(g.id(), where, "absolute_path");
    m.format = r.str(g.id(), where, "format");
    m.sha256 = r.str(g.id(), where, "sha256");
    m.parameters = r.i64(g.id(), where, "parameters");
    const std::vector<std::string> names = r.strings(g.id(), where, "file_names", -1);
    const auto bytes = r.array<uint64_t>(g.id(), where, "file_bytes", H5T_NATIVE_UINT64, { int64_t(names.size()) });
    const std::vector<std::string> hashes = r.strings(g.id(), where, "file_sha256", int64_t(names.size()));
    for (size_t i = 0; i < names.size(); ++i)
        m.files.push_back({ names[i], bytes[i], hashes[i] });
    return m;
}

Histogram readHistogram(const Reader &r, hid_t g, const std::string &where, const char *name)
{
    Histogram h;
    h.counts = r.array<uint64_t>(g, where, name, H5T_NATIVE_UINT64, { -1 });
    Handle ds = r.openDataset(g, where, name);
    const std::string dsWhere = where + "/" + name;
    h.lo = r.f64(ds.id(), dsWhere, "lo");
    h.hi = r.f64(ds.id(), dsWhere, "hi");
    h.scale = r.f64(ds.id(), dsWhere, "scale");
    const int64_t edges = h.counts.empty() ? 0 : int64_t(h.counts.size()) + 1;
    r.array<double>(g, where, (std::string(name) + "_edges").c_str(), H5T_NATIVE_DOUBLE, { edges });
    return h;
}

WeightStats readStats(const Reader &r, hid_t parent, const std::string &name, int64_t &index)
{
    const std::string where = "/statistics/weights/" + name;
    Handle g = openGroup(r.ctx, parent, name, "/statistics/weights");
    const hid_t id = g.id();
    WeightStats s;
    s.name = name;
    index = r.i64(id, where, "index");
    s.rows = r.i64(id, where, "rows");
    s.cols = r.i64(id, where, "cols");
    if (s.rows < 0 || s.cols < 0 || s.rows > (int64_t(1) << 32) || s.cols > (int64_t(1) << 32))
        fail(r.ctx.path, where + ": shape " + std::to_string(s.rows) + " x " + std::to_string(s.cols) + " is invalid");
    s.count = r.u64(id, where, "count");
    s.nanCount = r.u64(id, where, "nan_count");
    s.infCount = r.u64(id, where, "inf_count");
    s.zeroCount = r.u64(id, where, "zero_count");
    s.min = r.f64(id, where, "min");
    s.max = r.f64(id, where, "max");
    s.absMax = r.f64(id, where, "absmax");
    s.mean = r.f64(id, where, "mean");
    s.stddev = r.f64(id, where, "stddev");
    s.skewness = r.f64(id, where, "skewness");
    s.kurtosis = r.f64(id, where, "kurtosis");
    s.outlierSigma = r.f64(id, where, "outlier_sigma");
    s.outlierThreshold = r.f64(id, where, "outlier_threshold");
    s.outlierCount = r.u64(id, where, "outlier_count");
    s.outlierFraction = r.f64(id, where, "outlier_fraction");
    s.linearHistogram = readHistogram(r, id, where, "linear_histogram");
    s.symlogHistogram = readHistogram(r, id, where, "symlog_histogram");
    s.rowAbsMax = r.array<float>(id, where, "row_absmax", H5T_NATIVE_FLOAT, { s.rows });
    s.colAbsMax = r.array<float>(id, where, "col_absmax", H5T_NATIVE_FLOAT, { s.cols });
    const auto rows = r.array<int64_t>(id, where, "top_outliers_row", H5T_NATIVE_INT64, { -1 });
    const auto cols = r.array<int64_t>(id, where, "top_outliers_col", H5T_NATIVE_INT64, { int64_t(rows.size()) });
    const auto values = r.array<float>(id, where, "top_outliers_value", H5T_NATIVE_FLOAT, { int64_t(rows.size()) });
    for (size_t i = 0; i < rows.size(); ++i)
        s.topOutliers.push_back({ rows[i], cols[i], values[i] });
    return s;
}

std::vector<LayerResult> readLayers(const Reader &r, hid_t run, const std::string &runWhere)
{
    Handle g = openGroup(r.ctx, run, "layers", runWhere);
    const std::string where = runWhere + "/layers";
    const hid_t id = g.id();
    const std::vector<std::string> name = r.strings(id, where, "name", -1);
    const int64_t n = int64_t(name.size());
    const auto block = r.array<int32_t>(id, where, "block", H5T_NATIVE_INT32, { n });
    const auto role = r.strings(id, where, "role", n);
    const auto method = r.strings(id, where, "method", n);
    const auto bits = r.array<int32_t>(id, where, "bits", H5T_NATIVE_INT32, { n });
    const auto groupSize = r.array<int32_t>(id, where, "group_size", H5T_NATIVE_INT32, { n });
    const auto mse = r.array<double>(id, where, "weight_mse", H5T_NATIVE_DOUBLE, { n });
    const auto rel = r.array<double>(id, where, "rel_output_error", H5T_NATIVE_DOUBLE, { n });
    const auto sqnr = r.array<double>(id, where, "sqnr_db", H5T_NATIVE_DOUBLE, { n });
    const auto loss = r.array<double>(id, where, "gptq_loss", H5T_NATIVE_DOUBLE, { n });
    const auto damp = r.array<double>(id, where, "damp", H5T_NATIVE_DOUBLE, { n });
    const auto dead = r.array<int32_t>(id, where, "dead_columns", H5T_NATIVE_INT32, { n });
    const auto bpw = r.array<double>(id, where, "bits_per_weight", H5T_NATIVE_DOUBLE, { n });
    const auto seconds = r.array<double>(id, where, "seconds", H5T_NATIVE_DOUBLE, { n });
    const auto actBits = r.array<int32_t>(id, where, "activation_bits", H5T_NATIVE_INT32, { n });
    const auto inputScales = r.strings(id, where, "input_scales", n);
    const auto note = r.strings(id, where, "note", n);
    std::vector<LayerResult> out;
    for (size_t i = 0; i < size_t(n); ++i) {
        LayerResult l;
        l.name = name[i];
        l.block = block[i];
        l.role = parseRole(r, where + "/role[" + std::to_string(i) + "]", role[i]);
        l.method = method[i];
        l.bits = bits[i];
        l.groupSize = groupSize[i];
        l.weightMse = mse[i];
        l.relOutputError = rel[i];
        l.sqnrDb = sqnr[i];
        if (!std::isnan(loss[i]))
            l.gptqLoss = loss[i];
        if (!std::isnan(damp[i]))
            l.damp = damp[i];
        l.deadColumns = dead[i];
        l.bitsPerWeight = bpw[i];
        l.seconds = seconds[i];
        l.activationBits = actBits[i];
        l.inputScales = inputScales[i];
        l.note = note[i];
        out.push_back(std::move(l));
    }
    return out;
}

std::vector<BlockResult> readBlocks(const Reader &r, hid_t run, const std::string &runWhere)
{
    Handle g = openGroup(r.ctx, run, "blocks", runWhere);
    const std::string where = runWhere + "/blocks";
    const auto block = r.array<int32_t>(g.id(), where, "block", H5T_NATIVE_INT32, { -1 });
    const int64_t n = int64_t(block.size());
    const auto err = r.array<double>(g.id(), where, "cumulative_error", H5T_NATIVE_DOUBLE, { n });
    const auto seconds = r.array<double>(g.id(), where, "seconds", H5T_NATIVE_DOUBLE, { n });
    std::vector<BlockResult> out;
    for (size_t i = 0; i < size_t(n); ++i)
        out.push_back({ block[i], err[i], seconds[i] });
    return out;
}

RunEvaluation readEvaluation(const Reader &r, hid_t run, const std::string &runWhere)
{
    Handle g = openGroup(r.ctx, run, "evaluation", runWhere);
    const std::string where = runWhere + "/evaluation";
    const hid_t id = g.id();
    RunEvaluation e;
    e.textPath = r.str(id, where, "text");
    e.textSha256 = r.str(id, where, "text_sha256");
    e.protocol = r.str(id, where, "protocol");
    e.ctx = r.i32(id, where, "ctx", 0, std::numeric_limits<int>::max());
    e.chunks = r.i64(id, where, "chunks");
    e.tokensScored = r.i64(id, where, "tokens_scored");
    e.perplexity = r.f64(id, where, "perplexity");
    e.originalPerplexity = r.f64(id, where, "original_perplexity");
    e.hasKld = r.boolean(id, where, "has_kld");
    e.kldMean = r.f64(id, where, "kld_mean");
    e.kldMedian = r.f64(id, where, "kld_median");
    e.kldP99 = r.f64(id, where, "kld_p99");
    e.kldMax = r.f64(id, where, "kld_max");
    e.top1Agreement = r.f64(id, where, "top1_agreement");
    return e;
}

QuantizedTensor readTensor(const Reader &r, hid_t parent, const std::string &parentWhere, const std::string &name,
    int64_t &index)
{
    const std::string where = parentWhere + "/" + name;
    Handle g = openGroup(r.ctx, parent, name, parentWhere);
    const hid_t id = g.id();
    QuantizedTensor t;
    t.name = name;
    index = r.i64(id, where, "index");
    t.method = r.str(id, where, "method");
    t.rows = r.i64(id, where, "rows");
    t.cols = r.i64(id, where, "cols");
    if (t.rows <= 0 || t.cols <= 0 || t.rows > (int64_t(1) << 32) || t.cols > (int64_t(1) << 32))
        fail(r.ctx.path, where + ": shape " + std::to_string(t.rows) + " x " + std::to_string(t.cols) + " is invalid");
    t.bits = r.i32(id, where, "bits", 1, 8);
    t.groupSize = r.i32(id, where, "group_size", -1, std::numeric_limits<int>::max());
    if (t.groupSize == 0)
        fail(r.ctx.path, where + "@group_size is 0");
    t.rowGroupSize = r.i32(id, where, "row_group_size", 1, std::numeric_limits<int>::max());
    const std::string grid = r.str(id, where, "grid");
    const GridInfo *info = findGrid(grid);
    if (!info)
        fail(r.ctx.path, where + "@grid: unknown grid '" + grid + "'");
    t.grid = info->id;
    t.symmetric = r.boolean(id, where, "symmetric");
    t.convention = parseName(r, where + "@convention", r.str(id, where, "convention"),
        { SymConvention::None, SymConvention::Restricted, SymConvention::FullSigned, SymConvention::GptqMidpoint,
            SymConvention::SignedMax },
        symConventionName);
    t.rounding = parseName(r, where + "@rounding", r.str(id, where, "rounding"),
        { RoundingMode::HalfToEven, RoundingMode::HalfAwayFromZero, RoundingMode::HalfUp }, roundingModeName);
    t.zeroKind = parseName(r, where + "@zero_kind", r.str(id, where, "zero_kind"),
        { ZeroPointKind::Implicit, ZeroPointKind::Integer, ZeroPointKind::Float }, zeroPointKindName);
    t.inputScalesSource = r.str(id, where, "input_scales_source");
    const int64_t ng = t.numGroups();
    t.codes = r.array<uint8_t>(id, where, "codes", H5T_NATIVE_UINT8, { t.rows, t.cols });
    t.scales = r.array<float>(id, where, "scales", H5T_NATIVE_FLOAT, { t.rows, ng });
    t.zeros = r.array<float>(id, where, "zeros", H5T_NATIVE_FLOAT, { t.rows, ng });
    t.gIdx = r.array<int32_t>(id, where, "g_idx", H5T_NATIVE_INT32, { t.cols });
    if (exists(id, "input_scales"))
        t.inputScales = r.array<float>(id, where, "input_scales", H5T_NATIVE_FLOAT, { t.cols });
    for (int32_t gi : t.gIdx)
        if (gi < 0 || gi >= ng)
            fail(r.ctx.path, where + "/g_idx holds " + std::to_string(gi) + ", outside 0.." + std::to_string(ng - 1));
    t.dequantized = t.dequantize();
    try {
        t.validate();
    } catch (const Error &e) {
        fail(r.ctx.path, where + ": " + e.what());
    }
    return t;
}

ProjectRun readRun(const Reader &r, hid_t runs, const std::string &name, bool loadTensors, int64_t &index)
{
    const std::string where = "/runs/" + name;
    Handle g = openGroup(r.ctx, runs, name, "/runs");
    const hid_t id = g.id();
    ProjectRun run;
    index = r.i64(id, where, "index");
    run.name = r.str(id, where, "name");
    run.runDir = r.str(id, where, "run_dir");
    run.bitsPerWeight = r.f64(id, where, "bits_per_weight");
    run.seconds = r.f64(id, where, "seconds");
    run.plan = r.json(id, where, "plan_json");
    try {
        run.provenance = RunProvenance::fromJson(r.json(id, where, "provenance_json"));
        run.activationQuant = ActivationQuantPlan::fromJson(r.json(id, where, "activation_quant_json"));
    } catch (const Error &e) {
        fail(r.ctx.path, where + ": " + e.what());
    }
    run.warnings = r.strings(id, where, "warnings", -1);
    run.layers = readLayers(r, id, where);
    run.blocks = readBlocks(r, id, where);
    if (exists(id, "evaluation"))
        run.evaluation = readEvaluation(r, id, where);
    const bool hasTensors = r.boolean(id, where, "has_tensors");
    if (!loadTensors)
        return run;
    if (hasTensors && !exists(id, "tensors"))
        fail(r.ctx.path, "missing group " + where + "/tensors");
    if (exists(id, "tensors")) {
        Handle tensors = openGroup(r.ctx, id, "tensors", where);
        std::vector<std::pair<int64_t, QuantizedTensor>> list;
        for (const std::string &tn : r.children(tensors.id(), where + "/tensors")) {
            int64_t i = 0;
            QuantizedTensor t = readTensor(r, tensors.id(), where + "/tensors", tn, i);
            list.emplace_back(i, std::move(t));
        }
        std::stable_sort(list.begin(), list.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
        for (auto &[i, t] : list)
            run.tensors.push_back(std::move(t));
    }
    if (exists(id, "modified")) {
        Handle modified = openGroup(r.ctx, id, "modified", where);
        for (const std::string &mn : r.children(modified.id(), where + "/modified"))
            run.modifiedTensors[mn] = r.array<float>(modified.id(), where + "/modified", mn.c_str(), H5T_NATIVE_FLOAT, { -1 });
    }
    return run;
}

// Statistics of each linear weight, with one progress bar across all of them.
class ForwardingProgress final : public Progress
{
public:
    explicit ForwardingProgress(Progress &outer)
        : m_outer(outer)
    { }
    void setTotal(double) override { }
    void advance(double amount) override { m_outer.advance(amount); }
    void message(std::string_view text) override { m_outer.message(text); }
    bool isCancelled() const override { return m_outer.isCancelled(); }

private:
    Progress &m_outer;
};

} // namespace

bool looksLikeProjectPath(const std::string &path)
{
    std::string lower(path);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    for (const char *ext : { ".qsproj.h5", ".qsproj", ".h5", ".hdf5" }) {
        const size_t n = std::strlen(ext);
        if (lower.size() > n && lower.compare(lower.size() - n, n, ext) == 0)
            return true;
    }
    return false;
}

ProjectModelRef describeModel(const std::string &path, const std::string &format, Progress *progress)
{
    ProjectModelRef m;
    m.path = path;
    std::error_code ec;
    const fs::path abs = fs::absolute(path, ec);
    m.absolutePath = ec ? path : abs.lexically_normal().string();
    m.format = format;
    RunProvenance p;
    hashModelFiles(path, p, progress);
    m.sha256 = p.modelSha256;
    m.files = p.modelFiles;
    return m;
}

ProjectRun projectRunFrom(const QuantRun &run, const std::string &name, const std::string &runDir, bool includeTensors)
{
    ProjectRun r;
    r.name = name;
    r.runDir = runDir;
    r.plan = run.plan.toJson();
    r.provenance = run.provenance;
    r.layers = run.layers;
    r.blocks = run.blocks;
    r.evaluation = run.evaluation;
    r.activationQuant = run.activationQuant;
    r.bitsPerWeight = run.bitsPerWeight;
    r.seconds = run.seconds;
    r.warnings = run.warnings;
    if (includeTensors) {
        r.tensors = run.tensors;
        for (QuantizedTensor &t : r.tensors)
            t.dequantized.clear(); // recomputed on read; not written
        r.modifiedTensors = run.modifiedTensors;
    }
    return r;
}

ProjectRun projectRunFrom(const RunDirContents &run, const std::string &name, bool includeTensors)
{
    ProjectRun r;
    r.name = name;
    // Absolute, so the project finds the run again whatever the working directory when it is opened.
    std::error_code ec;
    const fs::path abs = fs::absolute(run.path, ec);
    r.runDir = ec ? run.path : abs.lexically_normal().string();
    if (r.runDir.size() > 1 && r.runDir.back() == '/')
        r.runDir.pop_back();
    r.plan = run.plan.toJson();
    r.provenance = run.provenance;
    r.layers = run.layers;
    // run.json's blocks, warnings and seconds are not part of RunDirContents' typed fields.
    for (const nlohmann::json &b : run.runJson.value("blocks", nlohmann::json::array())) {
        BlockResult br;
        br.block = b.value("block", 0);
        const auto it = b.find("cumulative_error");
        br.cumulativeError = it != b.end() && it->is_number() ? it->get<double>()
                                                              : std::numeric_limits<double>::quiet_NaN();
        br.seconds = b.value("seconds", 0.0);
        r.blocks.push_back(br);
    }
    for (const nlohmann::json &wj : run.runJson.value("warnings", nlohmann::json::array()))
        if (wj.is_string())
            r.warnings.push_back(wj.get<std::string>());
    const auto sec = run.runJson.find("seconds");
    r.seconds = sec != run.runJson.end() && sec->is_number() ? sec->get<double>() : 0.0;
    r.evaluation = run.evaluation;
    r.activationQuant = run.activationQuant;
    r.bitsPerWeight = run.bitsPerWeight;
    if (includeTensors) {
        r.tensors = run.tensors;
        for (QuantizedTensor &t : r.tensors)
            t.dequantized.clear();
        r.modifiedTensors = run.modifiedTensors;
    }
    return r;
}

QuantRun quantRunFrom(const ProjectRun &run)
{
    QuantRun q;
    q.plan = Plan::fromJson(run.plan);
    q.provenance = run.provenance;
    q.layers = run.layers;
    q.blocks = run.blocks;
    q.tensors = run.tensors;
    for (QuantizedTensor &t : q.tensors)
        if (t.dequantized.empty())
            t.dequantized = t.dequantize();
    q.modifiedTensors = run.modifiedTensors;
    q.activationQuant = run.activationQuant;
    q.bitsPerWeight = run.bitsPerWeight;
    q.evaluation = run.evaluation;
    q.warnings = run.warnings;
    q.seconds = run.seconds;
    return q;
}

void writeProject(const Project &project, const std::string &path, Progress &progress)
{
    Writer w { Ctx { path }, deflateAvailable() };
    double total = double(project.weightStats.size());
    for (const ProjectRun &r : project.runs)
        total += double(r.tensors.size() + r.modifiedTensors.size());
    progress.setTotal(total);
    progress.message("writing project " + path);

    AtomicFile target(path); // creates the temporary (Error naming path when the folder is not writable)
    const QuietErrors quiet;
    {
        Handle file(w.ctx.check(H5Fcreate(target.tempPath().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                        "cannot create " + target.tempPath()),
            H5Fclose);
        {
            const hid_t root = file.id();
            w.attr(root, "/", "format_version", int64_t(kProjectFormatVersion));
            w.attr(root, "/", "created_by", "QuantScope " + quantscopeVersion());
            w.attr(root, "/", "content", kProjectContent);
            w.attr(root, "/", "saved_at", utcNow());
            w.attr(root, "/", "ui_state", (project.uiState.is_null() ? nlohmann::json::object() : project.uiState).dump());
            w.json(root, "/", "plan_json", project.plan);
            writeModel(w, root, project.model);

            Handle calib = createGroup(w.ctx, root, "calibration", "");
            w.jsonScalarAttrs(calib.id(), "/calibration", project.calibration.settings);
            w.json(calib.id(), "/calibration", "settings_json", project.calibration.settings);
            w.json(calib.id(), "/calibration", "provenance_json", project.calibration.provenance);

            Handle statistics = createGroup(w.ctx, root, "statistics", "");
            Handle weights = createGroup(w.ctx, statistics.id(), "weights", "/statistics");
            int64_t index = 0;
            for (const WeightStats &s : project.weightStats) {
                progress.throwIfCancelled();
                writeStats(w, weights.id(), s, index++);
                progress.advance(1.0);
            }

            Handle runs = createGroup(w.ctx, root, "runs", "");
            for (size_t i = 0; i < project.runs.size(); ++i) {
                progress.throwIfCancelled();
                writeRun(w, runs.id(), project.runs[i], i, progress);
            }
        }
        progress.throwIfCancelled();
        if (!file.close())
            w.ctx.failH5("cannot finish writing " + target.tempPath());
    }
    // H5Fclose has flushed; commit syncs and renames, failing (and removing the temporary) on ENOSPC/EIO.
    target.commit();
}

Project readProject(const std::string &path, bool loadTensors)
{
    const Reader r { Ctx { path } };
    const QuietErrors quiet;
    {
        FILE *f = std::fopen(path.c_str(), "rb");
        if (!f)
            fail(path, "cannot open: " + std::string(std::strerror(errno)));
        std::fclose(f);
    }
    if (H5Fis_hdf5(path.c_str()) <= 0) {
        takeHdf5Message();
        fail(path, "is not an HDF5 file (or is truncated)");
    }
    Handle file(r.ctx.check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open"), H5Fclose);
    const hid_t root = file.id();
    Project p;
    if (H5Aexists(root, "content") <= 0) {
        takeHdf5Message();
        fail(path, "is not a QuantScope project (no content attribute)");
    }
    const std::string content = r.str(root, "/", "content");
    if (content != kProjectContent)
        fail(path, "is not a QuantScope project (content is '" + content + "', expected '" + kProjectContent + "')");
    p.formatVersion = int(r.i64(root, "/", "format_version"));
    if (p.formatVersion > kProjectFormatVersion)
        fail(path,
            "was written by a newer QuantScope (format_version " + std::to_string(p.formatVersion)
                + "; this build reads up to " + std::to_string(kProjectFormatVersion) + ")");
    if (p.formatVersion < 1)
        fail(path, "has an invalid format_version " + std::to_string(p.formatVersion));
    p.createdBy = r.str(root, "/", "created_by");
    try {
        p.uiState = nlohmann::json::parse(r.str(root, "/", "ui_state"));
    } catch (const nlohmann::json::exception &e) {
        fail(path, std::string("/@ui_state: not valid JSON: ") + e.what());
    }
    p.plan = r.json(root, "/", "plan_json");
    p.model = readModel(r, root);

    Handle calib = openGroup(r.ctx, root, "calibration", "/");
    p.calibration.settings = r.json(calib.id(), "/calibration", "settings_json");
    p.calibration.provenance = r.json(calib.id(), "/calibration", "provenance_json");

    Handle statistics = openGroup(r.ctx, root, "statistics", "/");
    Handle weights = openGroup(r.ctx, statistics.id(), "weights", "/statistics");
    std::vector<std::pair<int64_t, WeightStats>> stats;
    for (const std::string &name : r.children(weights.id(), "/statistics/weights")) {
        int64_t index = 0;
        WeightStats s = readStats(r, weights.id(), name, index);
        stats.emplace_back(index, std::move(s));
    }
    std::stable_sort(stats.begin(), stats.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    for (auto &[i, s] : stats)
        p.weightStats.push_back(std::move(s));

    Handle runs = openGroup(r.ctx, root, "runs", "/");
    std::vector<std::pair<int64_t, ProjectRun>> list;
    for (const std::string &name : r.children(runs.id(), "/runs")) {
        int64_t index = 0;
        ProjectRun run = readRun(r, runs.id(), name, loadTensors, index);
        list.emplace_back(index, std::move(run));
    }
    std::stable_sort(list.begin(), list.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    for (auto &[i, run] : list)
        p.runs.push_back(std::move(run));
    return p;
}

ExportSummary exportProjectH5(const ExportSource &source, const ProjectExportOptions &options, const std::string &out,
    Progress &progress)
{
    const auto t0 = std::chrono::steady_clock::now();
    Project project;
    ExportSummary summary;
    summary.format = "hdf5";
    summary.path = out;

    // The model the project is about: for a RUN_DIR the original (already hashed and checked when the run
    // was opened), otherwise the model itself.
    std::shared_ptr<const Model> statsModel = source.model;
    if (source.run) {
        const RunProvenance &prov = source.run->provenance;
        project.model.path = prov.modelPath;
        project.model.absolutePath = prov.modelAbsolutePath;
        project.model.format = prov.modelFormat;
        project.model.sha256 = prov.modelSha256;
        project.model.files = prov.modelFiles;
        const std::string original = source.model->runInfo && !source.model->runInfo->originalPath.empty()
            ? source.model->runInfo->originalPath
            : prov.modelAbsolutePath;
        progress.message("opening the original model " + original);
        statsModel = openModel(original);
        project.plan = source.run->plan.toJson();
        project.calibration.provenance = prov.calibration;
        const nlohmann::json &c = prov.calibration;
        if (c.is_object()) {
            for (const char *key : { "text_path", "samples", "seq_len", "seed", "mode", "separator" })
                if (c.contains(key))
                    project.calibration.settings[key] = c[key];
        }
    } else {
        progress.message("hashing " + source.path);
        project.model = describeModel(source.path, source.model->format, &progress);
    }
    project.model.parameters = statsModel->parameterCount();

    // Statistics of every linear weight.
    std::vector<const Tensor *> linears;
    double values = 0.0;
    for (const Tensor &t : statsModel->tensors)
        if (isLinearRole(t.role)) {
            linears.push_back(&t);
            values += 2.0 * double(t.numel());
        }
    progress.setTotal(values);
    ForwardingProgress inner(progress);
    for (size_t i = 0; i < linears.size(); ++i) {
        progress.throwIfCancelled();
        progress.message("statistics " + linears[i]->name + " (" + std::to_string(i + 1) + "/"
            + std::to_string(linears.size()) + ")");
        project.weightStats.push_back(computeWeightStats(*statsModel, *linears[i], StatsOptions::defaults(), inner));
    }
    summary.notes.push_back("statistics of " + std::to_string(linears.size()) + " linear weights");

    if (source.run) {
        const std::string name = fs::path(source.run->path).filename().string();
        project.runs.push_back(projectRunFrom(*source.run, name.empty() ? source.run->path : name, options.includeTensors));
        if (options.includeTensors) {
            for (const QuantizedTensor &t : source.run->tensors) {
                const std::string type = "int" + std::to_string(t.bits)
                    + (t.groupSize > 0 ? " g" + std::to_string(t.groupSize) : std::string(" per channel"));
                summary.tensors.push_back({ "/runs/000/tensors/" + t.name, type, "codes", "" });
            }
            for (const auto &[name, v] : source.run->modifiedTensors)
                summary.tensors.push_back({ "/runs/000/modified/" + name, "F32", "float", "" });
        } else {
            summary.notes.push_back("--no-tensors: the run's quantized tensors were left out (metrics only)");
        }
    } else {
        summary.notes.push_back("not a run directory: the project holds the model reference and statistics only");
    }

    writeProject(project, out, progress);
    summary.bytes = pathBytes(out);
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return summary;
}

} // namespace qs::core
