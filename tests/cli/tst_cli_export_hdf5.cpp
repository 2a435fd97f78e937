// `quantscope-cli export RUN_DIR|MODEL --format hdf5 --out FILE` (docs/hdf5-project.md): exit codes, the
// --json summary, and the file read back with h5py: the run's codes identical to quantized.safetensors,
// statistics of every linear weight, --no-tensors, and errors that leave nothing behind.
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTest>

#include "CliRunner.h"
#include "TestData.h"

using qs::test::runCli;

namespace {

bool pythonWithH5py()
{
    if (!QFileInfo::exists(QStringLiteral("/usr/bin/python3")))
        return false;
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"), { QStringLiteral("-c"), QStringLiteral("import h5py") });
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// Prints what the project holds; compares every run tensor's codes, scales and zeros with the RUN_DIR's
// quantized.safetensors (parsed by hand: 8-byte header length, JSON header, raw little-endian data).
const char *kCheck = R"PY(
import json, struct, sys, os
import h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
out = {'content': f.attrs['content'], 'format_version': int(f.attrs['format_version']),
       'model_sha256': f['model'].attrs['sha256'], 'stats': len(f['statistics/weights']),
       'runs': len(f['runs'])}
if len(sys.argv) > 2:
    st = open(os.path.join(sys.argv[2], 'quantized.safetensors'), 'rb').read()
    n = struct.unpack('<Q', st[:8])[0]
    header = json.loads(st[8:8 + n])
    def tensor(name, dtype):
        e = header[name]
        a, b = e['data_offsets']
        return np.frombuffer(st[8 + n + a:8 + n + b], dtype=dtype).reshape(e['shape'])
    run = f['runs/000']
    out['run_name'] = run.attrs['name']
    out['run_dir'] = run.attrs['run_dir']
    out['layers'] = len(run['layers/name'])
    out['has_tensors'] = bool(run.attrs['has_tensors'])
    same = 0
    if 'tensors' in run:
        for name, g in run['tensors'].items():
            assert g['codes'].dtype == np.uint8
            assert np.array_equal(g['codes'][()], tensor(name + '.qcodes', np.uint8)), name
            assert np.array_equal(g['scales'][()], tensor(name + '.scales', np.float32)), name
            assert np.array_equal(g['zeros'][()], tensor(name + '.zeros', np.float32)), name
            assert np.array_equal(g['g_idx'][()], tensor(name + '.g_idx', np.int32)), name
            same += 1
    out['tensors_identical'] = same
print(json.dumps(out))
)PY";

QJsonObject runCheck(const QStringList &args, QString &error)
{
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"), QStringList { QStringLiteral("-c"), QString::fromUtf8(kCheck) } + args);
    if (!p.waitForFinished(120000) || p.exitStatus() != QProcess::NormalExit || p.exitCode() != 0) {
        error = QString::fromUtf8(p.readAllStandardError());
        return {};
    }
    return QJsonDocument::fromJson(p.readAllStandardOutput()).object();
}

} // namespace

class TestCliExportHdf5 : public QObject
{
    Q_OBJECT

    QString m_dir;
    QString m_model;
    QString m_run;

private slots:
    void initTestCase()
    {
        QS_REQUIRE_TESTDATA(model, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(text, "text/tinystories_sample.txt");
        m_model = model;
        m_dir = qs::test::outputDir() + QStringLiteral("/tst_cli_export_hdf5");
        QDir(m_dir).removeRecursively();
        QVERIFY(QDir().mkpath(m_dir));
        QFile plan(m_dir + "/plan.json");
        QVERIFY(plan.open(QIODevice::WriteOnly));
        plan.write(R"({"default": {"method": "rtn", "bits": 4, "group_size": 32},
                       "rules": [{"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32}]})");
        plan.close();
        m_run = m_dir + "/run";
        const auto r = runCli({ "quantize", m_model, "--plan", m_dir + "/plan.json", "--calib", text, "--samples", "4",
            "--seqlen", "32", "--out", m_run, "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
    }

    void exportRunDir()
    {
        const QString out = m_dir + "/run.qsproj.h5";
        const auto r = runCli({ "export", m_run, "--format", "hdf5", "--out", out, "--json", "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const QJsonObject j = QJsonDocument::fromJson(r.out.toUtf8()).object();
        QCOMPARE(j.value("format").toString(), QStringLiteral("hdf5"));
        QCOMPARE(j.value("out").toString(), out);
        QCOMPARE(qint64(j.value("bytes").toDouble()), QFileInfo(out).size());
        QCOMPARE(j.value("tensors").toArray().size(), 35);
        QVERIFY(!QFileInfo::exists(out + ".tmp"));

        const auto human = runCli({ "export", m_run, "--format", "hdf5", "--out", out, "--quiet" });
        QVERIFY2(human.exitCode == 0, qPrintable(human.err));
        QVERIFY2(human.out.startsWith(QStringLiteral("wrote ") + out), qPrintable(human.out));

        if (!pythonWithH5py()) {
            if (qs::test::inCi())
                QFAIL("python3 with h5py is required in CI (Debian: python3-h5py)");
            QSKIP("python3 with h5py not available");
        }
        QString error;
        const QJsonObject c = runCheck({ out, m_run }, error);
        QVERIFY2(!c.isEmpty(), qPrintable(error));
        QCOMPARE(c.value("content").toString(), QStringLiteral("quantscope.project"));
        QCOMPARE(c.value("format_version").toInt(), 1);
        QCOMPARE(c.value("stats").toInt(), 36); // 35 block linears + lm_head
        QCOMPARE(c.value("runs").toInt(), 1);
        QCOMPARE(c.value("run_dir").toString(), QFileInfo(m_run).absoluteFilePath()); // stored absolute
        QCOMPARE(c.value("layers").toInt(), 35);
        QVERIFY(c.value("has_tensors").toBool());
        QCOMPARE(c.value("tensors_identical").toInt(), 35);
    }

    void exportModelAndNoTensors()
    {
        if (!pythonWithH5py()) {
            if (qs::test::inCi())
                QFAIL("python3 with h5py is required in CI (Debian: python3-h5py)");
            QSKIP("python3 with h5py not available");
        }
        const QString modelOut = m_dir + "/model.qsproj.h5";
        auto r = runCli({ "export", m_model, "--format", "hdf5", "--out", modelOut, "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        QString error;
        QJsonObject c = runCheck({ modelOut }, error);
        QVERIFY2(!c.isEmpty(), qPrintable(error));
        QCOMPARE(c.value("runs").toInt(), 0);
        QCOMPARE(c.value("stats").toInt(), 36);
        QCOMPARE(c.value("model_sha256").toString().size(), 64);

        const QString light = m_dir + "/light.qsproj.h5";
        r = runCli({ "export", m_run, "--format", "hdf5", "--no-tensors", "--out", light, "--quiet" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        QVERIFY(r.out.contains(QStringLiteral("--no-tensors")));
        c = runCheck({ light, m_run }, error);
        QVERIFY2(!c.isEmpty(), qPrintable(error));
        QVERIFY(!c.value("has_tensors").toBool());
        QCOMPARE(c.value("tensors_identical").toInt(), 0);
        QCOMPARE(c.value("layers").toInt(), 35);
        QVERIFY(QFileInfo(light).size() < QFileInfo(m_dir + "/run.qsproj.h5").size());
    }

    void errorsExitOneAndLeaveNothing()
    {
        const QString noFolder = m_dir + "/missing-folder/out.qsproj.h5";
        auto r = runCli({ "export", m_run, "--format", "hdf5", "--out", noFolder, "--quiet" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(noFolder), qPrintable(r.err));
        QVERIFY(!QFileInfo::exists(noFolder));

        r = runCli({ "export", m_dir + "/no-such-model", "--format", "hdf5", "--out", m_dir + "/x.qsproj.h5" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("no-such-model")), qPrintable(r.err));
        QVERIFY(!QFileInfo::exists(m_dir + "/x.qsproj.h5"));

        r = runCli({ "export", m_run, "--format", "hdf5" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("--out")), qPrintable(r.err));

        r = runCli({ "export", m_model, "--format", "hdf5", "--type", "Q4_0", "--out", m_dir + "/y.qsproj.h5" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("--type")), qPrintable(r.err));

        // Nothing half-written anywhere in the folder.
        for (const QString &name : QDir(m_dir).entryList(QDir::Files))
            QVERIFY2(!name.contains(QStringLiteral(".tmp-")), qPrintable(name));
    }
};

QTEST_GUILESS_MAIN(TestCliExportHdf5)
#include "tst_cli_export_hdf5.moc"
