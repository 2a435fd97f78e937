// Writing the HDF5 project file (export/ProjectH5.h, docs/hdf5-project.md); reading is in
// ProjectH5Reader.cpp, the conversions from runs and the exporter in ProjectH5.cpp.
#include "export/ProjectH5.h"

#include <algorithm>
#include <ctime>
#include <hdf5.h>
#include <cmath>
#include <limits>

#include "common/AtomicFile.h"
#include "common/Error.h"
#include "common/H5Util.h"
#include "common/Progress.h"
#include "common/Version.h"

namespace qs::core {

namespace {

using h5::Ctx;
using h5::Handle;
using h5::QuietErrors;
using h5::stringType;
using h5::writeAttr;
using h5::writeBoolAttr;
using h5::writeStringDataset;

Handle createGroup(const Ctx &ctx, hid_t loc, const std::string &name, const std::string &where)
{
    if (name.empty() || name.find('/') != std::string::npos || name == ".")
        fail(ctx.path, "cannot store '" + name + "' under " + where + ": not a valid HDF5 object name");
    return Handle(ctx.check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create group " + where + "/" + name),
        H5Gclose);
}

bool deflateAvailable()
{
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
        return false;
    unsigned config = 0;
    return H5Zget_filter_info(H5Z_FILTER_DEFLATE, &config) >= 0 && (config & H5Z_FILTER_CONFIG_ENCODE_ENABLED);
}

struct Writer
{
    Ctx ctx;
    bool compress = false;

    void attr(hid_t loc, const std::string &where, const char *name, const std::string &value) const
    {
        if (value.find('\0') != std::string::npos)
            fail(ctx.path, where + "@" + name + ": text holds a NUL character");
        writeAttr(ctx, loc, where, name, value);
    }
    void attr(hid_t loc, const std::string &where, const char *name, const char *value) const
    {
        attr(loc, where, name, std::string(value));
    }
    void attr(hid_t loc, const std::string &where, const char *name, int64_t value) const
    {
        writeAttr(ctx, loc, where, name, value);
    }
    void attr(hid_t loc, const std::string &where, const char *name, int value) const
    {
        attr(loc, where, name, int64_t(value));
    }
    void attr(hid_t loc, const std::string &where, const char *name, uint64_t value) const
    {
        writeAttr(ctx, loc, where, name, value);
    }
    void attr(hid_t loc, const std::string &where, const char *name, double value) const
    {
        writeAttr(ctx, loc, where, name, value);
    }
    void boolAttr(hid_t loc, const std::string &where, const char *name, bool value) const
    {
        writeBoolAttr(ctx, loc, where, name, value);
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
        writeStringDataset(ctx, loc, where, name, value);
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

} // namespace

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

} // namespace qs::core
