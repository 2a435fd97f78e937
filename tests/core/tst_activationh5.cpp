// Activation statistics in HDF5: write, read back, open with h5py where docs/hdf5-activation-stats.md says
// things are, and leave nothing half-written behind on errors or cancellation.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QTest>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "TestData.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "common/Sha256.h"
#include "eval/Calibration.h"
#include "stats/ActivationStats.h"
#include "stats/ActivationStatsH5.h"

using namespace qs::core;
namespace fs = std::filesystem;

namespace {

std::vector<float> activations(int64_t tokens, int64_t cols, uint64_t seed, int outlierChannel)
{
    std::mt19937_64 rng(seed);
    std::vector<float> x(size_t(tokens * cols));
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t c = 0; c < cols; ++c) {
            float v = float(double(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
            if (c == outlierChannel && t % 3 == 0)
                v = 50.0f + float(t % 5);
            x[size_t(t * cols + c)] = v;
        }
    return x;
}

std::vector<InputActivationStats> sampleStats()
{
    ActivationStatsOptions o;
    o.collectHessians = true;
    o.hessianBlocks = { 0 };
    o.hessianInputs = { LinearInput::AttnIn };
    o.histogramBins = 64;
    ActivationStatsCollector c(o);
    const auto a = activations(90, 24, 1, 7);
    const auto b = activations(90, 40, 2, -1); // no outliers: empty outlier datasets
    const auto d = activations(90, 24, 3, 2);
    c.onLinearInput(0, LinearInput::AttnIn, a.data(), 50, 24);
    c.onLinearInput(0, LinearInput::AttnIn, a.data() + 50 * 24, 40, 24);
    c.onLinearInput(0, LinearInput::MlpAct, b.data(), 90, 40);
    c.onLinearInput(10, LinearInput::AttnIn, d.data(), 90, 24); // "10" sorts before "2" as text
    c.onLinearInput(2, LinearInput::MlpIn, d.data(), 90, 24);
    c.onLinearInput(-1, LinearInput::Head, a.data(), 90, 24);
    return c.takeResults();
}

nlohmann::json sampleCalibration()
{
    std::vector<int32_t> tokens(500);
    for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = int32_t(i);
    CalibrationSet set = makeCalibrationWindows(tokens, 4, 64, 1234);
    set.textPath = "/data/calib.txt";
    set.textSha256 = sha256Hex("calibration text");
    set.tokenizer = "tok512";
    nlohmann::json j = set.toJson();
    j["model_path"] = "/models/stories260K"; // callers add what they know
    return j;
}

std::string outPath(const char *name)
{
    return (fs::path(qs::test::outputDir().toStdString()) / name).string();
}

// Files beside path whose names start with path's name + ".tmp-" (AtomicFile's temporaries).
int leftoverTemps(const std::string &path)
{
    const fs::path p(path);
    int n = 0;
    for (const auto &e : fs::directory_iterator(p.parent_path()))
        if (e.path().filename().string().rfind(p.filename().string() + ".tmp-", 0) == 0)
            ++n;
    return n;
}

void compareStats(const InputActivationStats &a, const InputActivationStats &b, bool withHessian)
{
    QCOMPARE(a.block, b.block);
    QCOMPARE(a.input, b.input);
    QCOMPARE(a.cols, b.cols);
    QCOMPARE(a.tokens, b.tokens);
    QCOMPARE(a.nonFiniteTokens, b.nonFiniteTokens);
    QVERIFY(a.min == b.min && a.max == b.max && a.absMax == b.absMax);
    QCOMPARE(a.channelAbsMax, b.channelAbsMax);
    QVERIFY(a.channelMeanAbs == b.channelMeanAbs);
    QVERIFY(a.channelMeanSquare == b.channelMeanSquare);
    QVERIFY(a.histogramRange == b.histogramRange);
    QCOMPARE(a.histogramCounts, b.histogramCounts);
    QVERIFY(a.outlierFactor == b.outlierFactor);
    QVERIFY(a.outlierMedian == b.outlierMedian);
    QVERIFY(a.outlierThreshold == b.outlierThreshold);
    QCOMPARE(a.outlierChannels, b.outlierChannels);
    QVERIFY(a.outlierTokenShare == b.outlierTokenShare);
    QCOMPARE(a.outlierShareExact, b.outlierShareExact);
    QCOMPARE(a.hasHessian, b.hasHessian);
    if (withHessian && a.hasHessian)
        QVERIFY(a.hessian == b.hessian);
}

// Reads everything the docs promise with h5py and prints it as JSON; asserts the types h5py should see.
const char *kPythonReader = R"PY(
import json, sys
import h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
assert isinstance(f.attrs['format_version'], (int, np.integer)), type(f.attrs['format_version'])
assert isinstance(f.attrs['created_by'], str)
cal = f['calibration']
out = {
    'format_version': int(f.attrs['format_version']),
    'created_by': f.attrs['created_by'],
    'content': f.attrs['content'],
    'provenance': json.loads(cal['provenance_json'].asstr()[()]),
    'calibration_attrs': {k: (v.item() if hasattr(v, 'item') else v) for k, v in cal.attrs.items()},
    'inputs': {},
}
acts = f['activations']
for block in acts:
    for inp in acts[block]:
        g = acts[block][inp]
        d = {}
        for name in ['channel_absmax', 'channel_mean_abs', 'channel_mean_square', 'histogram_counts',
                     'histogram_edges', 'outlier_channels', 'outlier_token_share']:
            ds = g[name]
            assert ds.ndim == 1, name
            d[name] = ds[()].tolist()
            d[name + '.dtype'] = str(ds.dtype)
        for k, v in g.attrs.items():
            if k == 'layers':
                d['layers'] = [str(x) for x in v]
            else:
                d['attr.' + k] = v.item() if hasattr(v, 'item') else v
        assert isinstance(g.attrs['outlier_share_exact'], (bool, np.bool_)), type(g.attrs['outlier_share_exact'])
        if 'hessian' in g:
            h = g['hessian']
            d['hessian'] = h[()].tolist()
            d['hessian.dtype'] = str(h.dtype)
            d['hessian.chunks'] = list(h.chunks)
            d['hessian.tokens'] = int(h.attrs['tokens'])
        out['inputs'][block + '/' + inp] = d
print(json.dumps(out))
)PY";

// Edits a file with h5py to make it malformed in one specific way (argv[2]).
const char *kPythonBreaker = R"PY(
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r+')
what = sys.argv[2]
g = f['activations/0/attn_in']
def replace(obj, name, value, dtype=None):
    del obj.attrs[name]
    if dtype is None:
        obj.attrs[name] = value
    else:
        obj.attrs.create(name, value, dtype=dtype)
if what == 'string-array':
    replace(f, 'created_by', ['QuantScope', 'twice', 'three times'])
elif what == 'fixed-string-array':
    replace(g, 'input', np.array([b'attn_in', b'mlp_in'], dtype='S7'))
elif what == 'string-empty':
    del g.attrs['input']
    g.attrs.create('input', h5py.Empty(h5py.string_dtype()))
elif what == 'string-is-number':
    replace(g, 'input', 3)
elif what == 'provenance-array':
    del f['calibration/provenance_json']
    f['calibration/provenance_json'] = ['{}', '{}']
elif what == 'number-is-string':
    replace(g, 'min', 'small')
elif what == 'number-is-bool':
    replace(g, 'absmax', True)
elif what == 'number-array':
    replace(g, 'cols', [24, 24])
elif what == 'count-nan':
    replace(g, 'tokens', float('nan'))
elif what == 'count-fraction':
    replace(g, 'cols', 23.5)
elif what == 'count-negative':
    replace(g, 'non_finite_tokens', -1)
elif what == 'count-whole-float':
    replace(g, 'tokens', float(g.attrs['tokens']))
elif what == 'version-nan':
    replace(f, 'format_version', float('nan'))
elif what == 'bool-is-float':
    replace(g, 'has_hessian', 1.0)
elif what == 'bool-is-string':
    replace(g, 'outlier_share_exact', 'yes')
elif what == 'bool-array':
    replace(g, 'outlier_share_exact', np.array([True, False, True]))
elif what == 'bool-is-int':
    replace(g, 'outlier_share_exact', np.int8(1 if g.attrs['outlier_share_exact'] else 0))
# Datasets that claim a huge shape without storing it (HDF5 allocates on first write, so the file stays small).
elif what == 'histogram-huge':
    del g['histogram_counts']
    g.create_dataset('histogram_counts', shape=(2**40,), dtype='u8', chunks=(4096,))
elif what == 'outliers-huge':
    del g['outlier_channels']
    g.create_dataset('outlier_channels', shape=(2**40,), dtype='i4', chunks=(4096,))
elif what == 'cols-huge':
    cols = 2**40
    replace(g, 'cols', np.int64(cols))
    for name, dtype in (('channel_absmax', 'f4'), ('channel_mean_abs', 'f8'), ('channel_mean_square', 'f8')):
        del g[name]
        g.create_dataset(name, shape=(cols,), dtype=dtype, chunks=(4096,))
elif what == 'hessian-unwritten':
    h = g['hessian']
    shape = h.shape
    del g['hessian']
    g.create_dataset('hessian', shape=shape, dtype='f8', chunks=(1, shape[1]))
elif what == 'block-huge':
    replace(g, 'block', np.int64(2**40))
elif what == 'block-below-lm-head':
    replace(g, 'block', np.int64(-2))
elif what == 'outlier-is-cols':
    ds = g['outlier_channels']
    assert ds.shape[0] > 0
    ds[0] = g.attrs['cols']
elif what == 'outlier-negative':
    g['outlier_channels'][0] = -1
elif what == 'outliers-int64-wide':
    v = g['outlier_channels'][()].astype('i8')
    v[0] = 2**33 + 1
    del g['outlier_channels']
    g['outlier_channels'] = v
elif what == 'outliers-int64-valid':
    v = g['outlier_channels'][()].astype('i8')
    del g['outlier_channels']
    g['outlier_channels'] = v
elif what == 'outliers-float':
    v = g['outlier_channels'][()].astype('f8')
    del g['outlier_channels']
    g['outlier_channels'] = v
elif what == 'counts-are-strings':
    n = g['histogram_counts'].shape[0]
    del g['histogram_counts']
    g['histogram_counts'] = np.array(['x'] * n, dtype=h5py.string_dtype())
elif what == 'means-are-bools':
    n = g['channel_mean_abs'].shape[0]
    del g['channel_mean_abs']
    g['channel_mean_abs'] = np.zeros(n, dtype=bool)
elif what == 'hessian-is-string':
    shape = g['hessian'].shape
    del g['hessian']
    g['hessian'] = np.full(shape, 'x', dtype=h5py.string_dtype())
elif what == 'absmax-float64':
    v = g['channel_absmax'][()].astype('f8')
    del g['channel_absmax']
    g['channel_absmax'] = v
elif what == 'version-zero':
    replace(f, 'format_version', np.int64(0))
else:
    raise SystemExit('unknown breakage ' + what)
f.close()
)PY";

bool pythonWithH5py()
{
    if (!QFileInfo::exists(QStringLiteral("/usr/bin/python3")))
        return false;
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"), { QStringLiteral("-c"), QStringLiteral("import h5py") });
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// Runs kPythonBreaker on path; false (with stderr in err) when python fails.
bool breakWithH5py(const std::string &path, const QString &breakage, QByteArray &err)
{
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"),
        { QStringLiteral("-c"), QString::fromUtf8(kPythonBreaker), QString::fromStdString(path), breakage });
    if (!p.waitForFinished(60000))
        return false;
    err = p.readAllStandardError();
    return p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// The message of the Error that f throws; empty when it throws none (other exceptions propagate).
template <class F>
std::string errorText(F &&f)
{
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return {};
}

} // namespace

class TestActivationH5 : public QObject
{
    Q_OBJECT
private slots:
    void roundTrip()
    {
        const std::vector<InputActivationStats> stats = sampleStats();
        const nlohmann::json calibration = sampleCalibration();
        const std::string path = outPath("activations-roundtrip.h5");
        fs::remove(path);
        writeActivationStatsH5(path, stats, calibration);
        QVERIFY(fs::exists(path));
        QCOMPARE(leftoverTemps(path), 0);

        const ActivationStatsFile file = readActivationStatsH5(path);
        QCOMPARE(file.formatVersion, kActivationStatsFormatVersion);
        QVERIFY(file.createdBy.rfind("QuantScope ", 0) == 0);
        QVERIFY2(nlohmann::json::parse(file.calibrationJson) == calibration, file.calibrationJson.c_str());
        QCOMPARE(file.inputs.size(), stats.size());
        // Model order, as the collector returns them: 0/attn_in, 0/mlp_act, 2/mlp_in, 10/attn_in, head.
        QCOMPARE(file.inputs[2].block, 2);
        QCOMPARE(file.inputs[3].block, 10);
        QCOMPARE(file.inputs[4].block, -1);
        for (size_t i = 0; i < stats.size(); ++i)
            compareStats(file.inputs[i], stats[i], true);
        QVERIFY(stats[0].hasHessian);
        QVERIFY(!stats[0].outlierChannels.empty());
        QVERIFY(stats[1].outlierChannels.empty());

        const ActivationStatsFile light = readActivationStatsH5(path, false);
        QVERIFY(light.inputs[0].hasHessian);
        QCOMPARE(light.inputs[0].hessian.size(), Eigen::Index(0));
        QVERIFY(readActivationHessian(path, 0, LinearInput::AttnIn) == stats[0].hessian);
        QVERIFY_THROWS_EXCEPTION(Error, readActivationHessian(path, 0, LinearInput::MlpAct));
        QVERIFY_THROWS_EXCEPTION(Error, readActivationHessian(path, 5, LinearInput::AttnIn));

        // Overwriting replaces the file in one step.
        writeActivationStatsH5(path, { stats[1] }, calibration);
        QCOMPARE(readActivationStatsH5(path).inputs.size(), size_t(1));
        QCOMPARE(leftoverTemps(path), 0);
    }

    void readableWithH5py()
    {
        if (!pythonWithH5py()) {
            if (qs::test::inCi())
                QFAIL("python3 with h5py is required in CI (Debian: python3-h5py)");
            QSKIP("python3 with h5py not available");
        }
        const std::vector<InputActivationStats> stats = sampleStats();
        const nlohmann::json calibration = sampleCalibration();
        const std::string path = outPath("activations-h5py.h5");
        writeActivationStatsH5(path, stats, calibration);

        QProcess p;
        p.start(QStringLiteral("/usr/bin/python3"),
            { QStringLiteral("-c"), QString::fromUtf8(kPythonReader), QString::fromStdString(path) });
        QVERIFY(p.waitForFinished(60000));
        const QByteArray err = p.readAllStandardError();
        QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, err.constData());
        const nlohmann::json j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());

        QCOMPARE(j["format_version"].get<int>(), kActivationStatsFormatVersion);
        QCOMPARE(j["content"].get<std::string>(), std::string("quantscope.activation_stats"));
        QVERIFY2(j["provenance"] == calibration, j["provenance"].dump().c_str());
        // Scalar provenance entries are also attributes of /calibration.
        const nlohmann::json &ca = j["calibration_attrs"];
        QCOMPARE(ca["seed"].get<uint64_t>(), uint64_t(1234));
        QCOMPARE(ca["text_sha256"].get<std::string>(), calibration["text_sha256"].get<std::string>());
        QCOMPARE(ca["model_path"].get<std::string>(), std::string("/models/stories260K"));
        QCOMPARE(ca["mode"].get<std::string>(), std::string("windows"));
        QVERIFY(!ca.contains("origins")); // arrays live only in the JSON

        QCOMPARE(j["inputs"].size(), stats.size());
        for (const InputActivationStats &s : stats) {
            std::string key = activationGroupPath(s.block, s.input).substr(std::string("/activations/").size());
            QVERIFY2(j["inputs"].contains(key), key.c_str());
            const nlohmann::json &d = j["inputs"][key];
            QCOMPARE(d["channel_absmax.dtype"].get<std::string>(), std::string("float32"));
            QCOMPARE(d["channel_mean_abs.dtype"].get<std::string>(), std::string("float64"));
            QCOMPARE(d["histogram_counts.dtype"].get<std::string>(), std::string("uint64"));
            QCOMPARE(d["outlier_channels.dtype"].get<std::string>(), std::string("int32"));
            QCOMPARE(d["channel_absmax"].get<std::vector<float>>(), s.channelAbsMax);
            QVERIFY(d["channel_mean_abs"].get<std::vector<double>>() == s.channelMeanAbs);
            QVERIFY(d["channel_mean_square"].get<std::vector<double>>() == s.channelMeanSquare);
            QCOMPARE(d["histogram_counts"].get<std::vector<uint64_t>>(), s.histogramCounts);
            QVERIFY(d["histogram_edges"].get<std::vector<double>>() == s.histogramEdges());
            QCOMPARE(d["outlier_channels"].get<std::vector<int>>(), s.outlierChannels);
            QVERIFY(d["outlier_token_share"].get<std::vector<double>>() == s.outlierTokenShare);
            QCOMPARE(d["attr.block"].get<int>(), s.block);
            QCOMPARE(d["attr.input"].get<std::string>(), std::string(linearInputName(s.input)));
            QCOMPARE(d["attr.tokens"].get<uint64_t>(), s.tokens);
            QCOMPARE(d["attr.cols"].get<int64_t>(), s.cols);
            QVERIFY(d["attr.outlier_threshold"].get<double>() == s.outlierThreshold);
            QVERIFY(d["attr.outlier_share_exact"].is_boolean());
            QCOMPARE(d["attr.has_hessian"].get<bool>(), s.hasHessian);
            QCOMPARE(d["layers"].get<std::vector<std::string>>(), s.layers());
            QCOMPARE(d.contains("hessian"), s.hasHessian);
            if (s.hasHessian) {
                QCOMPARE(d["hessian.dtype"].get<std::string>(), std::string("float64"));
                QCOMPARE(d["hessian.tokens"].get<uint64_t>(), s.tokens);
                QCOMPARE(d["hessian.chunks"][1].get<int64_t>(), s.cols); // chunks of whole rows
                for (int64_t r = 0; r < s.cols; ++r)
                    for (int64_t c = 0; c < s.cols; ++c)
                        QVERIFY(d["hessian"][size_t(r)][size_t(c)].get<double>() == s.hessian(r, c));
            }
        }
        QVERIFY(j["inputs"].contains("lm_head/head"));
        QVERIFY(j["inputs"].contains("10/attn_in"));
    }

    void hdf5FailureLeavesNothingBehind()
    {
        const std::vector<InputActivationStats> stats = sampleStats();
        const std::string path = outPath("activations-failure.h5");
        fs::remove(path);
        // An empty attribute name is rejected by HDF5 itself, halfway through the file.
        nlohmann::json bad = sampleCalibration();
        bad[""] = "no name";
        try {
            writeActivationStatsH5(path, stats, bad);
            QFAIL("expected Error");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).rfind(path + ":", 0) == 0, e.what());
            QVERIFY2(std::string(e.what()).find("HDF5") != std::string::npos, e.what());
        }
        QVERIFY(!fs::exists(path));
        QCOMPARE(leftoverTemps(path), 0);

        // A failed rewrite leaves the previous complete file in place.
        writeActivationStatsH5(path, stats, sampleCalibration());
        std::vector<InputActivationStats> broken = stats;
        broken[1].channelMeanAbs.pop_back();
        QVERIFY_THROWS_EXCEPTION(Error, writeActivationStatsH5(path, broken, sampleCalibration()));
        QCOMPARE(readActivationStatsH5(path).inputs.size(), stats.size());
        QCOMPARE(leftoverTemps(path), 0);
    }

    void cancelLeavesNothingBehind()
    {
        const std::string path = outPath("activations-cancel.h5");
        fs::remove(path);
        NullProgress cancel;
        cancel.cancel();
        QVERIFY_THROWS_EXCEPTION(Cancelled, writeActivationStatsH5(path, sampleStats(), sampleCalibration(), &cancel));
        QVERIFY(!fs::exists(path));
        QCOMPARE(leftoverTemps(path), 0);
    }

    // Attributes of the wrong shape or type are rejected with the file and the attribute named, instead of
    // being converted quietly or read past the end of a one-value buffer.
    void malformedAttributesNameWhatIsWrong_data()
    {
        QTest::addColumn<QString>("breakage");
        QTest::addColumn<QString>("expected"); // empty: the file still reads
        const auto row = [](const char *name, const char *expected) {
            QTest::newRow(name) << QString::fromLatin1(name) << QString::fromLatin1(expected);
        };
        row("string-array", "/@created_by is not a single string");
        row("fixed-string-array", "/activations/0/attn_in@input is not a single string");
        row("string-empty", "/activations/0/attn_in@input is not a single string");
        row("string-is-number", "/activations/0/attn_in@input is not a string");
        row("provenance-array", "/calibration/provenance_json is not a single string");
        row("number-is-string", "/activations/0/attn_in@min is not a number");
        row("number-is-bool", "/activations/0/attn_in@absmax is not a number");
        row("number-array", "/activations/0/attn_in@cols is not a single value");
        row("count-nan", "/activations/0/attn_in@tokens is nan, expected a whole number");
        row("count-fraction", "/activations/0/attn_in@cols is 23.5, expected a whole number");
        row("count-negative", "/activations/0/attn_in@non_finite_tokens is -1, expected a count (not negative)");
        row("version-nan", "/@format_version is nan, expected a whole number");
        row("bool-is-float", "/activations/0/attn_in@has_hessian is not a bool");
        row("bool-is-string", "/activations/0/attn_in@outlier_share_exact is not a bool");
        row("bool-array", "/activations/0/attn_in@outlier_share_exact is not a single value");
        row("version-zero", "/@format_version is 0, not a format version");
        // Datasets: sizes are checked against the attributes and limits before anything is allocated.
        row("histogram-huge",
            "/activations/0/attn_in/histogram_counts has 1099511627776 values, more than the histogram bin limit");
        row("outliers-huge", "/activations/0/attn_in/outlier_channels has 1099511627776 values, more than cols (24)");
        row("cols-huge", "/activations/0/attn_in@cols is 1099511627776, outside 1..16777216");
        row("hessian-unwritten", "/activations/0/attn_in/hessian holds no data");
        row("block-huge", "/activations/0/attn_in@block is 1099511627776, outside -1..2147483647");
        row("block-below-lm-head", "/activations/0/attn_in@block is -2, outside -1..2147483647");
        row("outlier-is-cols", "/activations/0/attn_in/outlier_channels[0] is 24, not a channel of 0..23");
        row("outlier-negative", "/activations/0/attn_in/outlier_channels[0] is -1, not a channel of 0..23");
        row("outliers-int64-wide", "/activations/0/attn_in/outlier_channels[0] is 2147483647, not a channel of 0..23");
        row("outliers-float",
            "/activations/0/attn_in/outlier_channels holds float values, expected int32 channel indices");
        row("counts-are-strings",
            "/activations/0/attn_in/histogram_counts holds string values, expected uint64 counts");
        row("means-are-bools", "/activations/0/attn_in/channel_mean_abs holds enum (bool) values, expected float64");
        row("hessian-is-string", "/activations/0/attn_in/hessian holds string values, expected float64");
        // What other tools write for valid values still reads.
        row("count-whole-float", "");
        row("bool-is-int", "");
        row("outliers-int64-valid", "");
        row("absmax-float64", "");
    }

    void malformedAttributesNameWhatIsWrong()
    {
        QFETCH(QString, breakage);
        QFETCH(QString, expected);
        if (!pythonWithH5py()) {
            if (qs::test::inCi())
                QFAIL("python3 with h5py is required in CI (Debian: python3-h5py)");
            QSKIP("python3 with h5py not available");
        }
        const std::vector<InputActivationStats> stats = sampleStats();
        const std::string path = outPath(("activations-broken-" + breakage.toStdString() + ".h5").c_str());
        writeActivationStatsH5(path, stats, sampleCalibration());
        QByteArray err;
        QVERIFY2(breakWithH5py(path, breakage, err), err.constData());
        const std::string e = errorText([&] { (void)readActivationStatsH5(path); });
        if (expected.isEmpty()) {
            QVERIFY2(e.empty(), e.c_str());
            const ActivationStatsFile file = readActivationStatsH5(path);
            QCOMPARE(file.inputs.size(), stats.size());
            compareStats(file.inputs[0], stats[0], true);
            return;
        }
        QVERIFY2(e.rfind(path + ": ", 0) == 0, e.c_str());
        QVERIFY2(e.find(expected.toStdString()) != std::string::npos, e.c_str());
    }

    void readErrorsNameThePath()
    {
        const std::string missing = outPath("no-such-activations.h5");
        try {
            readActivationStatsH5(missing);
            QFAIL("expected Error");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).rfind(missing + ":", 0) == 0, e.what());
        }
        const std::string text = outPath("not-hdf5.h5");
        {
            QFile f(QString::fromStdString(text));
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("this is not HDF5\n");
        }
        try {
            readActivationStatsH5(text);
            QFAIL("expected Error");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).find("not an HDF5 file") != std::string::npos, e.what());
        }
        // Truncated files (an interrupted copy): HDF5 notices, and the message still names the file.
        const std::string whole = outPath("activations-whole.h5");
        writeActivationStatsH5(whole, sampleStats(), sampleCalibration());
        const uintmax_t size = fs::file_size(whole);
        for (const uintmax_t keep : { uintmax_t(8), uintmax_t(600), size / 2, size - 1 }) {
            const std::string cut = outPath("activations-truncated.h5");
            fs::copy_file(whole, cut, fs::copy_options::overwrite_existing);
            fs::resize_file(cut, keep);
            const std::string e = errorText([&] { (void)readActivationStatsH5(cut); });
            QVERIFY2(e.rfind(cut + ":", 0) == 0, (std::to_string(keep) + " bytes: " + e).c_str());
            const std::string eh = errorText([&] { (void)readActivationHessian(cut, 0, LinearInput::AttnIn); });
            QVERIFY2(eh.rfind(cut + ":", 0) == 0, (std::to_string(keep) + " bytes: " + eh).c_str());
        }

        const std::string noFolder = outPath("no-such-folder/out.h5");
        QVERIFY_THROWS_EXCEPTION(Error, writeActivationStatsH5(noFolder, sampleStats(), sampleCalibration()));
    }
};

QTEST_GUILESS_MAIN(TestActivationH5)
#include "tst_activationh5.moc"
