// Reading the HDF5 project file (export/ProjectH5.h, docs/hdf5-project.md); writing is in
// ProjectH5Writer.cpp.
#include "export/ProjectH5.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <hdf5.h>
#include <cmath>
#include <limits>

#include "common/Error.h"
#include "common/H5Util.h"

namespace qs::core {

namespace {

using h5::childNames;
using h5::Ctx;
using h5::exists;
using h5::Handle;
using h5::QuietErrors;
using h5::stringType;
using h5::takeHdf5Message;

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

Handle openGroup(const Ctx &ctx, hid_t loc, const std::string &name, const std::string &where)
{
    if (!exists(loc, name))
        fail(ctx.path, "missing group " + where + (where == "/" ? "" : "/") + name);
    if (objectType(loc, name) != H5I_GROUP)
        fail(ctx.path, where + (where == "/" ? "" : "/") + name + " is not a group");
    return Handle(ctx.check(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), "cannot open group " + where + "/" + name),
        H5Gclose);
}

struct Reader
{
    Ctx ctx;

    std::string stringFrom(hid_t obj, bool isAttr, const std::string &what) const
    {
        return h5::readString(ctx, obj, isAttr, what);
    }
    std::string str(hid_t loc, const std::string &where, const char *name) const
    {
        return h5::readStringAttr(ctx, loc, where, name);
    }
    int64_t i64(hid_t loc, const std::string &where, const char *name) const
    {
        return h5::readInt64Attr(ctx, loc, where, name);
    }
    uint64_t u64(hid_t loc, const std::string &where, const char *name) const
    {
        return h5::readUInt64Attr(ctx, loc, where, name);
    }
    double f64(hid_t loc, const std::string &where, const char *name) const
    {
        return h5::readDoubleAttr(ctx, loc, where, name);
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
        return h5::readBoolAttr(ctx, loc, where, name);
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
        const hsize_t total = h5::checkedValueCount(ctx, what, dims, hsize_t(1) << 40);
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
        return childNames(ctx, group, where);
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

} // namespace

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

} // namespace qs::core
