// The HDF5 project file (docs/hdf5-project.md): every field written and read back, the documented layout
// checked with h5py, malformed files (truncated, wrong content, missing groups) rejected with errors that
// name the file, cancellation and unwritable folders leaving nothing behind, and the export of a RUN_DIR
// made by the pipeline on stories260K carrying exactly the run's codes.
#include <QFile>
#include <QProcess>
#include <QTest>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "Stories260KRun.h"
#include "TestData.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "eval/Calibration.h"
#include "export/ExportSource.h"
#include "export/ProjectH5.h"
#include "io/FormatRegistry.h"
#include "quant/Pipeline.h"
#include "quant/RunDir.h"
#include "stats/ActivationStatsH5.h"
#include "stats/WeightStats.h"

using namespace qs::core;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using qs::test::CancellingProgress;
using qs::test::errorText;

int leftoverTemps(const std::string &path)
{
    const fs::path p(path);
    int n = 0;
    for (const auto &e : fs::directory_iterator(p.parent_path()))
        if (e.path().filename().string().rfind(p.filename().string() + ".tmp-", 0) == 0)
            ++n;
    return n;
}

bool pythonWithH5py()
{
    if (!QFileInfo::exists(QStringLiteral("/usr/bin/python3")))
        return false;
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"), { QStringLiteral("-c"), QStringLiteral("import h5py") });
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// Runs a python snippet with the file as argv[1]; returns stdout, or fails the test with stderr.
bool runPython(const char *script, const QStringList &args, QByteArray &out, QByteArray &err)
{
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"), QStringList { QStringLiteral("-c"), QString::fromUtf8(script) } + args);
    if (!p.waitForFinished(120000))
        return false;
    out = p.readAllStandardOutput();
    err = p.readAllStandardError();
    return p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

#define REQUIRE_H5PY()                                                                                         \
    do {                                                                                                       \
        if (!pythonWithH5py()) {                                                                               \
            if (qs::test::inCi())                                                                              \
                QFAIL("python3 with h5py is required in CI (Debian: python3-h5py)");                           \
            QSKIP("python3 with h5py not available");                                                          \
        }                                                                                                      \
    } while (false)

// Reads what docs/hdf5-project.md documents and prints it as JSON, asserting dtypes and shapes on the way.
const char *kPythonReader = R"PY(
import json, sys
import h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
def scalar(v):
    return v.item() if hasattr(v, 'item') else v
out = {}
assert isinstance(f.attrs['format_version'], (int, np.integer))
out['root'] = {k: scalar(f.attrs[k]) for k in ['format_version', 'created_by', 'content', 'saved_at', 'ui_state']}
out['plan'] = json.loads(f['plan_json'].asstr()[()])
m = f['model']
out['model'] = {k: scalar(m.attrs[k]) for k in ['path', 'absolute_path', 'format', 'sha256', 'parameters']}
out['model']['file_names'] = [x.decode() if isinstance(x, bytes) else x for x in m['file_names'][()]]
assert m['file_bytes'].dtype == np.uint64
out['model']['file_bytes'] = m['file_bytes'][()].tolist()
c = f['calibration']
out['calibration'] = {'attrs': {k: scalar(v) for k, v in c.attrs.items()},
                      'settings': json.loads(c['settings_json'].asstr()[()]),
                      'provenance': json.loads(c['provenance_json'].asstr()[()])}
stats = {}
for name, g in f['statistics/weights'].items():
    d = {k: scalar(g.attrs[k]) for k in ['index', 'rows', 'cols', 'count', 'mean', 'stddev', 'absmax', 'outlier_count']}
    for ds in ['linear_histogram', 'linear_histogram_edges', 'symlog_histogram', 'symlog_histogram_edges',
               'row_absmax', 'col_absmax', 'top_outliers_row', 'top_outliers_col', 'top_outliers_value']:
        d[ds + '.dtype'] = str(g[ds].dtype)
        d[ds + '.shape'] = list(g[ds].shape)
    d['linear_histogram'] = g['linear_histogram'][()].tolist()
    d['linear_lo'] = scalar(g['linear_histogram'].attrs['lo'])
    d['symlog_scale'] = scalar(g['symlog_histogram'].attrs['scale'])
    d['col_absmax'] = g['col_absmax'][()].tolist()
    stats[name] = d
out['stats'] = stats
runs = []
for name in sorted(f['runs'], key=lambda n: int(f['runs'][n].attrs['index'])):
    g = f['runs'][name]
    r = {'group': name}
    r.update({k: scalar(g.attrs[k]) for k in ['index', 'name', 'run_dir', 'bits_per_weight', 'seconds', 'model_sha256']})
    assert isinstance(g.attrs['has_tensors'], (bool, np.bool_))
    r['has_tensors'] = bool(g.attrs['has_tensors'])
    r['plan'] = json.loads(g['plan_json'].asstr()[()])
    r['provenance'] = json.loads(g['provenance_json'].asstr()[()])
    r['activation_quant'] = json.loads(g['activation_quant_json'].asstr()[()])
    L = g['layers']
    r['layers'] = {'name': [x.decode() for x in L['name'][()]],
                   'method': [x.decode() for x in L['method'][()]],
                   'weight_mse': L['weight_mse'][()].tolist(),
                   'rel_output_error': L['rel_output_error'][()].tolist(),
                   'bits': L['bits'][()].tolist(),
                   'dtypes': {k: str(L[k].dtype) for k in ['block', 'bits', 'group_size', 'weight_mse', 'sqnr_db',
                                                           'gptq_loss', 'bits_per_weight', 'activation_bits']}}
    B = g['blocks']
    r['blocks'] = {'block': B['block'][()].tolist(), 'cumulative_error': B['cumulative_error'][()].tolist()}
    if 'evaluation' in g:
        r['evaluation'] = {k: scalar(v) for k, v in g['evaluation'].attrs.items()}
    if 'tensors' in g:
        T = {}
        for tn, t in g['tensors'].items():
            e = {k: scalar(t.attrs[k]) for k in ['index', 'method', 'rows', 'cols', 'bits', 'group_size', 'num_groups',
                                                 'grid', 'zero_kind']}
            for ds in ['codes', 'scales', 'zeros', 'g_idx']:
                e[ds + '.dtype'] = str(t[ds].dtype)
                e[ds + '.shape'] = list(t[ds].shape)
            e['codes.compression'] = t['codes'].compression
            e['codes.chunks'] = list(t['codes'].chunks) if t['codes'].chunks else None
            e['codes'] = t['codes'][()].reshape(-1).tolist()
            e['scales'] = t['scales'][()].reshape(-1).tolist()
            e['g_idx'] = t['g_idx'][()].tolist()
            # The documented dequantization formula, in float32 like the C++ side.
            q = t['codes'][()].astype(np.float32)
            gi = t['g_idx'][()]
            w = t['scales'][()][:, gi] * (q - t['zeros'][()][:, gi])
            e['dequant_sum'] = float(np.sum(w.astype(np.float64)))
            if 'input_scales' in t:
                e['input_scales.shape'] = list(t['input_scales'].shape)
            T[tn] = e
        r['tensors'] = T
        r['modified'] = {mn: list(ds.shape) for mn, ds in g['modified'].items()}
    runs.append(r)
out['runs'] = runs
print(json.dumps(out))
)PY";

// Edits a copy of a project with h5py to make it malformed in one specific way.
const char *kPythonBreaker = R"PY(
import sys, h5py
f = h5py.File(sys.argv[1], 'r+')
what = sys.argv[2]
if what == 'no-runs':
    del f['runs']
elif what == 'no-layers':
    del f['runs/000/layers']
elif what == 'no-stats':
    del f['statistics']
elif what == 'short-codes':
    t = f['runs/000/tensors']
    name = sorted(t.keys())[0]
    del t[name]['codes']
    t[name].create_dataset('codes', data=[1, 2, 3], dtype='u1')
elif what == 'newer':
    f.attrs['format_version'] = 99
elif what == 'bad-json':
    del f['plan_json']
    f['plan_json'] = 'not json {'
elif what == 'layers-mismatch':
    del f['runs/000/layers/bits']
    f['runs/000/layers/bits'] = [4]
elif what == 'stats-as-dataset':
    del f['statistics/weights']
    f['statistics/weights'] = [1, 2, 3]
f.close()
)PY";

void compareStats(const WeightStats &a, const WeightStats &b)
{
    QCOMPARE(a.name, b.name);
    QCOMPARE(a.rows, b.rows);
    QCOMPARE(a.cols, b.cols);
    QCOMPARE(a.count, b.count);
    QCOMPARE(a.nanCount, b.nanCount);
    QCOMPARE(a.infCount, b.infCount);
    QCOMPARE(a.zeroCount, b.zeroCount);
    QVERIFY(a.min == b.min && a.max == b.max && a.absMax == b.absMax && a.mean == b.mean);
    QVERIFY(a.stddev == b.stddev && a.skewness == b.skewness && a.kurtosis == b.kurtosis);
    QVERIFY(a.outlierSigma == b.outlierSigma && a.outlierThreshold == b.outlierThreshold);
    QCOMPARE(a.outlierCount, b.outlierCount);
    QVERIFY(a.outlierFraction == b.outlierFraction);
    for (const auto &[x, y] : { std::pair(&a.linearHistogram, &b.linearHistogram),
             std::pair(&a.symlogHistogram, &b.symlogHistogram) }) {
        QVERIFY(x->lo == y->lo && x->hi == y->hi && x->scale == y->scale);
        QCOMPARE(x->counts, y->counts);
    }
    QCOMPARE(a.rowAbsMax, b.rowAbsMax);
    QCOMPARE(a.colAbsMax, b.colAbsMax);
    QCOMPARE(a.topOutliers.size(), b.topOutliers.size());
    for (size_t i = 0; i < a.topOutliers.size(); ++i)
        QVERIFY(a.topOutliers[i].row == b.topOutliers[i].row && a.topOutliers[i].col == b.topOutliers[i].col
            && a.topOutliers[i].value == b.topOutliers[i].value);
}

void compareTensor(const QuantizedTensor &a, const QuantizedTensor &b)
{
    QCOMPARE(a.name, b.name);
    QCOMPARE(a.method, b.method);
    QCOMPARE(a.rows, b.rows);
    QCOMPARE(a.cols, b.cols);
    QCOMPARE(a.bits, b.bits);
    QCOMPARE(a.groupSize, b.groupSize);
    QCOMPARE(a.rowGroupSize, b.rowGroupSize);
    QCOMPARE(a.grid, b.grid);
    QCOMPARE(a.symmetric, b.symmetric);
    QCOMPARE(a.convention, b.convention);
    QCOMPARE(a.rounding, b.rounding);
    QCOMPARE(a.zeroKind, b.zeroKind);
    QCOMPARE(a.codes, b.codes);
    QCOMPARE(a.scales, b.scales);
    QCOMPARE(a.zeros, b.zeros);
    QCOMPARE(a.gIdx, b.gIdx);
    QCOMPARE(a.inputScales, b.inputScales);
    QCOMPARE(a.inputScalesSource, b.inputScalesSource);
}

void compareRun(const ProjectRun &a, const ProjectRun &b, bool withTensors)
{
    QCOMPARE(a.name, b.name);
    QCOMPARE(a.runDir, b.runDir);
    QVERIFY(a.plan == b.plan);
    QVERIFY(a.provenance.toJson() == b.provenance.toJson());
    QCOMPARE(a.layers.size(), b.layers.size());
    for (size_t i = 0; i < a.layers.size(); ++i) {
        QVERIFY2(a.layers[i].toJson() == b.layers[i].toJson(), a.layers[i].name.c_str());
        QCOMPARE(a.layers[i].role, b.layers[i].role);
        QVERIFY(a.layers[i].sqnrDb == b.layers[i].sqnrDb); // +inf survives
    }
    QCOMPARE(a.blocks.size(), b.blocks.size());
    for (size_t i = 0; i < a.blocks.size(); ++i) {
        QCOMPARE(a.blocks[i].block, b.blocks[i].block);
        QVERIFY(a.blocks[i].cumulativeError == b.blocks[i].cumulativeError
            || (std::isnan(a.blocks[i].cumulativeError) && std::isnan(b.blocks[i].cumulativeError)));
        QVERIFY(a.blocks[i].seconds == b.blocks[i].seconds);
    }
    QCOMPARE(a.evaluation.has_value(), b.evaluation.has_value());
    if (a.evaluation)
        QVERIFY(a.evaluation->toJson() == b.evaluation->toJson());
    QVERIFY(a.activationQuant == b.activationQuant);
    QVERIFY(a.bitsPerWeight == b.bitsPerWeight);
    QVERIFY(a.seconds == b.seconds);
    QCOMPARE(a.warnings, b.warnings);
    if (!withTensors)
        return;
    QCOMPARE(a.tensors.size(), b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i)
        compareTensor(a.tensors[i], b.tensors[i]);
    QVERIFY(a.modifiedTensors == b.modifiedTensors);
}

} // namespace

class TestProjectH5 : public QObject
{
    Q_OBJECT

    std::shared_ptr<const Model> m_model;
    std::string m_modelDir;
    std::string m_text;
    std::string m_out;
    QuantRun m_run;
    Project m_project;

    std::string out(const std::string &name) const { return (fs::path(m_out) / name).string(); }

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(dir, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_modelDir = dir.toStdString();
        m_text = text.toStdString();
        m_model = openModel(m_modelDir);
        m_out = qs::test::freshOutputDir("tst_projecth5").string();

        // A run with every kind of result: RTN 4-bit g32, GPTQ on down_proj, SmoothQuant W8A8 on block 0's
        // q/k/v (input scales, folded norm, activation quantization), one layer skipped, evaluation and
        // cumulative error.
        PipelineOptions o = qs::test::calibrationOptions(m_text, 4, 32);
        o.evalText = m_text;
        o.eval.ctx = 64;
        o.eval.maxChunks = 2;
        o.cumulativeError = true;
        const Plan plan = Plan::fromJson(json::parse(R"({
            "default": {"method": "rtn", "bits": 4, "group_size": 32},
            "rules": [{"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32},
                      {"match": "re:model\\.layers\\.0\\.self_attn\\.[qkv]_proj", "method": "smoothquant"}],
            "skip": ["lm_head", "model.embed_tokens", "model.layers.4.mlp.up_proj"]})"));
        m_run = qs::test::quantize(m_model, plan, o);
        QVERIFY(m_run.evaluation);
        QVERIFY(!m_run.modifiedTensors.empty());
        QVERIFY(!m_run.activationQuant.empty());

        m_project.model = describeModel(m_modelDir, m_model->format);
        m_project.model.parameters = m_model->parameterCount();
        m_project.plan = plan.toJson();
        m_project.calibration.settings
            = { { "text", m_text }, { "samples", 4 }, { "seq_len", 32 }, { "seed", 0 }, { "eval_ctx", 64 },
                  { "eval_protocol", "llamacpp" } };
        m_project.calibration.provenance = m_run.provenance.calibration;
        StatsOptions so;
        so.histogramBins = 64;
        NullProgress progress;
        for (const Tensor &t : m_model->tensors)
            if (isLinearRole(t.role) || t.role == TensorRole::Norm)
                m_project.weightStats.push_back(computeWeightStats(*m_model, t, so, progress));
        m_project.runs.push_back(projectRunFrom(m_run, "Run 1: mixed", "", true));
        m_project.runs.push_back(projectRunFrom(m_run, "Run 2: metrics only", "/nonexistent/run-dir", false));
        m_project.uiState = { { "selected_tensor", 3 }, { "tab", "Runs" } };
    }

    void describeModelHashesLikeTheRun()
    {
        QCOMPARE(m_project.model.sha256, m_run.provenance.modelSha256);
        QCOMPARE(m_project.model.files.size(), m_run.provenance.modelFiles.size());
        QVERIFY(fs::path(m_project.model.absolutePath).is_absolute());
        QCOMPARE(m_project.model.format, std::string("safetensors"));
    }

    void roundTripEveryField()
    {
        const std::string path = out("roundtrip.qsproj.h5");
        NullProgress progress;
        writeProject(m_project, path, progress);
        QCOMPARE(leftoverTemps(path), 0);

        const Project p = readProject(path);
        QCOMPARE(p.formatVersion, kProjectFormatVersion);
        QVERIFY(p.createdBy.rfind("QuantScope ", 0) == 0);
        QCOMPARE(p.model.path, m_project.model.path);
        QCOMPARE(p.model.absolutePath, m_project.model.absolutePath);
        QCOMPARE(p.model.format, m_project.model.format);
        QCOMPARE(p.model.sha256, m_project.model.sha256);
        QCOMPARE(p.model.parameters, m_project.model.parameters);
        QCOMPARE(p.model.files.size(), m_project.model.files.size());
        for (size_t i = 0; i < p.model.files.size(); ++i)
            QVERIFY(p.model.files[i].file == m_project.model.files[i].file
                && p.model.files[i].bytes == m_project.model.files[i].bytes
                && p.model.files[i].sha256 == m_project.model.files[i].sha256);
        QVERIFY(p.plan == m_project.plan);
        QVERIFY(p.calibration == m_project.calibration);
        QVERIFY(p.uiState == m_project.uiState);
        QCOMPARE(p.weightStats.size(), m_project.weightStats.size());
        for (size_t i = 0; i < p.weightStats.size(); ++i)
            compareStats(p.weightStats[i], m_project.weightStats[i]);
        QCOMPARE(p.runs.size(), size_t(2));
        compareRun(p.runs[0], m_project.runs[0], true);
        compareRun(p.runs[1], m_project.runs[1], true);
        QVERIFY(p.runs[1].tensors.empty());
        // Dequantized weights are recomputed on read, bit-identical to the pipeline's.
        for (const QuantizedTensor &t : p.runs[0].tensors)
            QVERIFY2(t.dequantized == m_run.findTensor(t.name)->dequantized, t.name.c_str());
        // A QuantRun rebuilt from the project is the run the pipeline returned.
        const QuantRun q = quantRunFrom(p.runs[0]);
        QVERIFY(q.plan == m_run.plan);
        QCOMPARE(q.tensors.size(), m_run.tensors.size());
        QVERIFY(q.evaluation->toJson() == m_run.evaluation->toJson());

        // Without tensors the runs' metrics still load.
        const Project light = readProject(path, false);
        QVERIFY(light.runs[0].tensors.empty());
        QCOMPARE(light.runs[0].layers.size(), m_run.layers.size());

        // Saving again replaces the file in one step.
        Project smaller = m_project;
        smaller.runs.resize(1);
        writeProject(smaller, path, progress);
        QCOMPARE(readProject(path, false).runs.size(), size_t(1));
        QCOMPARE(leftoverTemps(path), 0);
    }

    void readableWithH5pyWhereTheDocsSay()
    {
        REQUIRE_H5PY();
        const std::string path = out("h5py.qsproj.h5");
        NullProgress progress;
        writeProject(m_project, path, progress);
        QByteArray stdoutText, stderrText;
        QVERIFY2(runPython(kPythonReader, { QString::fromStdString(path) }, stdoutText, stderrText),
            stderrText.constData());
        const json j = json::parse(stdoutText.toStdString());

        QCOMPARE(j["root"]["format_version"].get<int>(), kProjectFormatVersion);
        QCOMPARE(j["root"]["content"].get<std::string>(), std::string("quantscope.project"));
        QVERIFY(json::parse(j["root"]["ui_state"].get<std::string>()) == m_project.uiState);
        QVERIFY(j["plan"] == m_project.plan);
        QCOMPARE(j["model"]["sha256"].get<std::string>(), m_project.model.sha256);
        QCOMPARE(j["model"]["format"].get<std::string>(), std::string("safetensors"));
        QCOMPARE(j["model"]["parameters"].get<int64_t>(), m_model->parameterCount());
        QCOMPARE(j["model"]["file_names"].size(), m_project.model.files.size());
        QCOMPARE(j["calibration"]["attrs"]["samples"].get<int>(), 4);
        QCOMPARE(j["calibration"]["attrs"]["text"].get<std::string>(), m_text);
        QVERIFY(j["calibration"]["provenance"] == m_project.calibration.provenance);

        QCOMPARE(j["stats"].size(), m_project.weightStats.size());
        for (size_t i = 0; i < m_project.weightStats.size(); ++i) {
            const WeightStats &s = m_project.weightStats[i];
            const json &d = j["stats"][s.name];
            QCOMPARE(d["index"].get<size_t>(), i);
            QCOMPARE(d["rows"].get<int64_t>(), s.rows);
            QCOMPARE(d["count"].get<uint64_t>(), s.count);
            QVERIFY(d["mean"].get<double>() == s.mean);
            QCOMPARE(d["linear_histogram.dtype"].get<std::string>(), std::string("uint64"));
            QCOMPARE(d["linear_histogram.shape"][0].get<int>(), 64);
            QCOMPARE(d["linear_histogram_edges.shape"][0].get<int>(), 65);
            QCOMPARE(d["linear_histogram_edges.dtype"].get<std::string>(), std::string("float64"));
            QCOMPARE(d["row_absmax.dtype"].get<std::string>(), std::string("float32"));
            QCOMPARE(d["row_absmax.shape"][0].get<int64_t>(), s.rows);
            QCOMPARE(d["col_absmax.shape"][0].get<int64_t>(), s.cols);
            QCOMPARE(d["top_outliers_row.dtype"].get<std::string>(), std::string("int64"));
            QCOMPARE(d["linear_histogram"].get<std::vector<uint64_t>>(), s.linearHistogram.counts);
            QVERIFY(d["linear_lo"].get<double>() == s.linearHistogram.lo);
            QVERIFY(d["symlog_scale"].get<double>() == s.symlogHistogram.scale);
            QCOMPARE(d["col_absmax"].get<std::vector<float>>(), s.colAbsMax);
        }

        QCOMPARE(j["runs"].size(), size_t(2));
        const json &r0 = j["runs"][0];
        QCOMPARE(r0["group"].get<std::string>(), std::string("000"));
        QCOMPARE(r0["name"].get<std::string>(), std::string("Run 1: mixed"));
        QCOMPARE(r0["run_dir"].get<std::string>(), std::string());
        QVERIFY(r0["has_tensors"].get<bool>());
        QVERIFY(r0["bits_per_weight"].get<double>() == m_run.bitsPerWeight);
        QCOMPARE(r0["model_sha256"].get<std::string>(), m_run.provenance.modelSha256);
        QVERIFY(r0["plan"] == m_run.plan.toJson());
        QVERIFY(r0["activation_quant"] == m_run.activationQuant.toJson());
        QCOMPARE(r0["layers"]["name"].size(), m_run.layers.size());
        for (size_t i = 0; i < m_run.layers.size(); ++i) {
            QCOMPARE(r0["layers"]["name"][i].get<std::string>(), m_run.layers[i].name);
            QCOMPARE(r0["layers"]["method"][i].get<std::string>(), m_run.layers[i].method);
            QVERIFY(r0["layers"]["weight_mse"][i].get<double>() == m_run.layers[i].weightMse);
            QVERIFY(r0["layers"]["rel_output_error"][i].get<double>() == m_run.layers[i].relOutputError);
        }
        const json &dt = r0["layers"]["dtypes"];
        QCOMPARE(dt["block"].get<std::string>(), std::string("int32"));
        QCOMPARE(dt["weight_mse"].get<std::string>(), std::string("float64"));
        QCOMPARE(dt["gptq_loss"].get<std::string>(), std::string("float64"));
        QCOMPARE(r0["blocks"]["block"].size(), m_run.blocks.size());
        QVERIFY(r0["blocks"]["cumulative_error"][0].get<double>() == m_run.blocks[0].cumulativeError);
        QVERIFY(r0["evaluation"]["perplexity"].get<double>() == m_run.evaluation->perplexity);
        QVERIFY(r0["evaluation"]["has_kld"].get<bool>());
        QVERIFY(r0["evaluation"]["kld_mean"].get<double>() == m_run.evaluation->kldMean);

        QCOMPARE(r0["tensors"].size(), m_run.tensors.size());
        int withInputScales = 0;
        for (size_t i = 0; i < m_run.tensors.size(); ++i) {
            const QuantizedTensor &t = m_run.tensors[i];
            const json &e = r0["tensors"][t.name];
            QCOMPARE(e["index"].get<size_t>(), i);
            QCOMPARE(e["method"].get<std::string>(), t.method);
            QCOMPARE(e["codes.dtype"].get<std::string>(), std::string("uint8"));
            QCOMPARE(e["scales.dtype"].get<std::string>(), std::string("float32"));
            QCOMPARE(e["zeros.dtype"].get<std::string>(), std::string("float32"));
            QCOMPARE(e["g_idx.dtype"].get<std::string>(), std::string("int32"));
            QVERIFY(e["codes.shape"] == json::array({ t.rows, t.cols }));
            QVERIFY(e["scales.shape"] == json::array({ t.rows, t.numGroups() }));
            QVERIFY(e["g_idx.shape"] == json::array({ t.cols }));
            QCOMPARE(e["codes.chunks"][1].get<int64_t>(), t.cols); // chunks of whole rows
            QCOMPARE(e["codes.compression"].get<std::string>(), std::string("gzip"));
            QCOMPARE(e["codes"].get<std::vector<uint8_t>>(), t.codes);
            QCOMPARE(e["scales"].get<std::vector<float>>(), t.scales);
            QCOMPARE(e["g_idx"].get<std::vector<int32_t>>(), t.gIdx);
            // The docs' formula reproduces the pipeline's dequantized weights.
            double sum = 0.0;
            for (float v : t.dequantized)
                sum += double(v);
            QVERIFY2(std::fabs(e["dequant_sum"].get<double>() - sum) <= 1e-9 * std::max(1.0, std::fabs(sum)),
                t.name.c_str());
            if (e.contains("input_scales.shape")) {
                ++withInputScales;
                QVERIFY(e["input_scales.shape"] == json::array({ t.cols }));
            }
        }
        QCOMPARE(withInputScales, 3); // block 0's q/k/v (SmoothQuant)
        QCOMPARE(r0["modified"].size(), m_run.modifiedTensors.size());
        QVERIFY(r0["modified"].contains("model.layers.0.input_layernorm"));

        const json &r1 = j["runs"][1];
        QCOMPARE(r1["run_dir"].get<std::string>(), std::string("/nonexistent/run-dir"));
        QVERIFY(!r1["has_tensors"].get<bool>());
        QVERIFY(!r1.contains("tensors"));
    }

    void truncatedFilesAreRejected()
    {
        const std::string good = out("truncate-source.qsproj.h5");
        NullProgress progress;
        writeProject(m_project, good, progress);
        const uintmax_t size = fs::file_size(good);
        QVERIFY(size > 4096);
        for (const double fraction : { 0.0, 0.001, 0.1, 0.5, 0.9, 0.999 }) {
            const std::string bad = out("truncated.qsproj.h5");
            fs::copy_file(good, bad, fs::copy_options::overwrite_existing);
            fs::resize_file(bad, uintmax_t(double(size) * fraction));
            const std::string e = errorText([&] { (void)readProject(bad); });
            QVERIFY2(!e.empty(), qPrintable(QStringLiteral("no error at %1").arg(fraction)));
            QVERIFY2(e.rfind(bad + ":", 0) == 0, e.c_str());
        }
        // The last byte: tensors may be the last thing in the file, so reading without them may pass, but
        // never crashes; reading everything must fail.
        const std::string bad = out("truncated.qsproj.h5");
        fs::copy_file(good, bad, fs::copy_options::overwrite_existing);
        fs::resize_file(bad, size - 1);
        QVERIFY(!errorText([&] { (void)readProject(bad); }).empty());
    }

    void wrongContentAndMissingFiles()
    {
        const std::string missing = out("no-such.qsproj.h5");
        std::string e = errorText([&] { (void)readProject(missing); });
        QVERIFY2(e.rfind(missing + ":", 0) == 0 && e.find("cannot open") != std::string::npos, e.c_str());

        const std::string text = out("text.qsproj.h5");
        {
            QFile f(QString::fromStdString(text));
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("this is not HDF5\n");
        }
        e = errorText([&] { (void)readProject(text); });
        QVERIFY2(e.find("is not an HDF5 file") != std::string::npos, e.c_str());

        // An activation statistics file is HDF5 but not a project.
        const std::string other = out("activations.h5");
        writeActivationStatsH5(other, {}, json::object());
        e = errorText([&] { (void)readProject(other); });
        QVERIFY2(e.rfind(other + ":", 0) == 0 && e.find("is not a QuantScope project") != std::string::npos
                && e.find("quantscope.activation_stats") != std::string::npos,
            e.c_str());
    }

    void malformedProjectsNameWhatIsWrong_data()
    {
        QTest::addColumn<QString>("breakage");
        QTest::addColumn<QString>("expected");
        QTest::newRow("no runs") << "no-runs" << "missing group /runs";
        QTest::newRow("no layers") << "no-layers" << "missing group /runs/000/layers";
        QTest::newRow("no statistics") << "no-stats" << "missing group /statistics";
        QTest::newRow("short codes") << "short-codes" << "codes has 1 dimensions, expected 2";
        QTest::newRow("newer version") << "newer" << "newer QuantScope (format_version 99";
        QTest::newRow("bad plan json") << "bad-json" << "/plan_json: not valid JSON";
        QTest::newRow("layer arrays disagree") << "layers-mismatch" << "/runs/000/layers/bits is 1, expected 3";
        QTest::newRow("group is a dataset") << "stats-as-dataset" << "/statistics/weights is not a group";
    }

    void malformedProjectsNameWhatIsWrong()
    {
        QFETCH(QString, breakage);
        QFETCH(QString, expected);
        REQUIRE_H5PY();
        const std::string path = out("broken-" + breakage.toStdString() + ".qsproj.h5");
        NullProgress progress;
        writeProject(m_project, path, progress);
        QVERIFY(errorText([&] { (void)readProject(path); }).empty());
        QByteArray o, err;
        QVERIFY2(runPython(kPythonBreaker, { QString::fromStdString(path), breakage }, o, err), err.constData());
        const std::string e = errorText([&] { (void)readProject(path); });
        QVERIFY2(e.rfind(path + ":", 0) == 0, e.c_str());
        // "expected 3": the number of layers is not fixed; compare the prefix when the count differs.
        std::string want = expected.toStdString();
        if (breakage == QLatin1String("layers-mismatch"))
            want = "/runs/000/layers/bits is 1, expected " + std::to_string(m_run.layers.size());
        QVERIFY2(e.find(want) != std::string::npos, e.c_str());
    }

    void cancelLeavesNothingBehind()
    {
        const std::string path = out("cancelled.qsproj.h5");
        fs::remove(path);
        for (const double after : { 0.5, 3.0, double(m_project.weightStats.size()) + 2.0 }) {
            CancellingProgress cancel(after);
            QVERIFY_THROWS_EXCEPTION(Cancelled, writeProject(m_project, path, cancel));
            QVERIFY(!fs::exists(path));
            QCOMPARE(leftoverTemps(path), 0);
        }
        // A cancelled rewrite leaves the previous file as it was.
        NullProgress ok;
        writeProject(m_project, path, ok);
        const uintmax_t size = fs::file_size(path);
        CancellingProgress cancel(2.0);
        QVERIFY_THROWS_EXCEPTION(Cancelled, writeProject(m_project, path, cancel));
        QCOMPARE(fs::file_size(path), size);
        QCOMPARE(readProject(path, false).runs.size(), size_t(2));
        QCOMPARE(leftoverTemps(path), 0);
    }

    void unwritableTargetsNameThePath()
    {
        NullProgress progress;
        const std::string noFolder = out("no-such-folder/project.qsproj.h5");
        std::string e = errorText([&] { writeProject(m_project, noFolder, progress); });
        QVERIFY2(e.rfind(noFolder + ":", 0) == 0, e.c_str());

        // A folder without write permission (root ignores permissions: then a folder no one can create
        // files in).
        std::string target;
        if (geteuid() != 0) {
            const std::string dir = out("read-only");
            fs::create_directories(dir);
            fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
            target = dir + "/project.qsproj.h5";
        } else {
            target = "/proc/quantscope-project-test.qsproj.h5";
        }
        e = errorText([&] { writeProject(m_project, target, progress); });
        if (geteuid() != 0)
            fs::permissions(out("read-only"), fs::perms::owner_all);
        QVERIFY2(e.rfind(target + ":", 0) == 0, e.c_str());
        QVERIFY(!fs::exists(target));

        // Inconsistent data fails before anything is renamed into place, and names the object.
        Project broken = m_project;
        broken.weightStats[0].colAbsMax.pop_back();
        const std::string path = out("inconsistent.qsproj.h5");
        fs::remove(path);
        e = errorText([&] { writeProject(broken, path, progress); });
        QVERIFY2(e.find("/statistics/weights/" + broken.weightStats[0].name) != std::string::npos, e.c_str());
        QVERIFY(!fs::exists(path));
        QCOMPARE(leftoverTemps(path), 0);
    }

    void exportOfARunDirCarriesItsCodes()
    {
        const std::string runDir = out("run-rtn");
        NullProgress progress;
        writeRunDir(m_run, runDir, progress);
        const ExportSource source = openExportSource(runDir, progress);
        QVERIFY(source.run);

        const std::string path = out("export.qsproj.h5");
        const ExportSummary summary = exportProjectH5(source, ProjectExportOptions {}, path, progress);
        QCOMPARE(summary.format, std::string("hdf5"));
        QCOMPARE(summary.bytes, uint64_t(fs::file_size(path)));
        QCOMPARE(summary.tensors.size(), m_run.tensors.size() + m_run.modifiedTensors.size());
        QCOMPARE(leftoverTemps(path), 0);

        const Project p = readProject(path);
        // The model is the original (the run was made from it), with the run's recorded hash.
        QCOMPARE(p.model.sha256, m_run.provenance.modelSha256);
        QCOMPARE(p.model.format, std::string("safetensors"));
        QVERIFY(p.plan == m_run.plan.toJson());
        QVERIFY(p.calibration.provenance == m_run.provenance.calibration);
        // Statistics of every linear weight of the original model.
        size_t linears = 0;
        for (const Tensor &t : m_model->tensors)
            linears += isLinearRole(t.role) ? 1 : 0;
        QCOMPARE(p.weightStats.size(), linears);
        const WeightStats direct = computeWeightStats(
            *m_model, m_model->tensor(p.weightStats[3].name), StatsOptions::defaults(), progress);
        compareStats(p.weightStats[3], direct);

        QCOMPARE(p.runs.size(), size_t(1));
        const ProjectRun &run = p.runs[0];
        QCOMPARE(run.runDir, runDir);
        QCOMPARE(run.name, std::string("run-rtn"));
        QCOMPARE(run.layers.size(), m_run.layers.size());
        QCOMPARE(run.blocks.size(), m_run.blocks.size());
        QVERIFY(run.evaluation && run.evaluation->toJson() == m_run.evaluation->toJson());
        const RunDirContents contents = readRunDir(runDir);
        QCOMPARE(run.tensors.size(), contents.tensors.size());
        for (size_t i = 0; i < run.tensors.size(); ++i) {
            compareTensor(run.tensors[i], contents.tensors[i]);
            QVERIFY(run.tensors[i].dequantized == contents.tensors[i].dequantized);
        }
        QVERIFY(run.modifiedTensors == contents.modifiedTensors);

        // --no-tensors: metrics only.
        ProjectExportOptions noTensors;
        noTensors.includeTensors = false;
        const std::string light = out("export-light.qsproj.h5");
        const ExportSummary s2 = exportProjectH5(source, noTensors, light, progress);
        QVERIFY(s2.tensors.empty());
        QVERIFY(fs::file_size(light) < fs::file_size(path));
        const Project pl = readProject(light);
        QVERIFY(pl.runs[0].tensors.empty());
        QCOMPARE(pl.runs[0].layers.size(), m_run.layers.size());

        // A plain model: reference and statistics, no runs.
        const ExportSource plain = openExportSource(m_modelDir, progress);
        const std::string modelOnly = out("export-model.qsproj.h5");
        exportProjectH5(plain, ProjectExportOptions {}, modelOnly, progress);
        const Project pm = readProject(modelOnly);
        QVERIFY(pm.runs.empty());
        QCOMPARE(pm.model.sha256, m_run.provenance.modelSha256);
        QCOMPARE(pm.weightStats.size(), linears);
        QVERIFY(pm.plan.is_null());

        // Cancelled during the statistics: nothing written.
        const std::string cancelled = out("export-cancelled.qsproj.h5");
        CancellingProgress cancel(1000.0);
        QVERIFY_THROWS_EXCEPTION(Cancelled, exportProjectH5(source, ProjectExportOptions {}, cancelled, cancel));
        QVERIFY(!fs::exists(cancelled));
        QCOMPARE(leftoverTemps(cancelled), 0);
    }

    void projectPathsAreRecognised()
    {
        for (const char *p : { "a.qsproj.h5", "b.QSPROJ", "c.h5", "/x/y.hdf5" })
            QVERIFY2(looksLikeProjectPath(p), p);
        for (const char *p : { "model.gguf", "config.json", "/models/stories260K-hf", "h5" })
            QVERIFY2(!looksLikeProjectPath(p), p);
    }
};

QTEST_GUILESS_MAIN(TestProjectH5)
#include "tst_projecth5.moc"
