// The statistics benchmark on a generated tiny demo model: it opens through the registry, counts every
// stored byte once and reports positive throughputs. (The figures themselves are for the CLI to print.)
#include <QTemporaryDir>
#include <QTest>

#include <filesystem>
#include <utility>

#include "common/Error.h"
#include "common/Progress.h"
#include "io/FormatRegistry.h"
#include "model/DemoModel.h"
#include "stats/StatsBench.h"

using namespace qs::core;

class TestStatsBench : public QObject
{
    Q_OBJECT
private slots:
    void benchOnTinyDemo()
    {
        if (modelFormats().empty())
            QSKIP("no model readers registered");
        QTemporaryDir dir;
        const std::string out = dir.filePath(QStringLiteral("tiny")).toStdString();
        DemoOptions o;
        o.dtype = "bf16";
        NullProgress progress;
        writeDemoModel(out, o, progress);

        const StatsBenchResult r = benchStats(out, progress);
        QCOMPARE(r.format, std::string("safetensors"));
        QCOMPARE(r.tensors, 21);
        const auto model = openModel(out);
        QCOMPARE(r.totalValues, uint64_t(model->parameterCount()));
        QCOMPARE(r.totalBytes, 2 * r.totalValues);
        // The data section of model.safetensors is exactly the stored bytes.
        QVERIFY(std::filesystem::file_size(std::filesystem::path(out) / "model.safetensors") > r.totalBytes);
        QVERIFY(r.rawReadAvailable);
        QVERIFY(r.threads >= 1);
        QVERIFY(r.openSeconds >= 0.0);
        QVERIFY(r.readGBps > 0.0 && r.firstReadGBps > 0.0);
        QVERIFY(r.decodeGBps > 0.0);
        QVERIFY(r.statsGBps > 0.0);
        // The file read covers the whole file, header included.
        QCOMPARE(r.fileBytes, uint64_t(std::filesystem::file_size(std::filesystem::path(out) / "model.safetensors")));
        QVERIFY(r.fileReadGBps > 0.0 && r.fileReadSeconds > 0.0);
        // CPU time of a phase: never negative, at most every thread busy for the whole phase (with slack for
        // the clocks' resolution).
        for (const auto &[cpu, wall] : { std::pair { r.readCpuSeconds, r.readSeconds },
                 std::pair { r.decodeCpuSeconds, r.decodeSeconds }, std::pair { r.statsCpuSeconds, r.statsSeconds } })
            QVERIFY(cpu >= 0.0 && cpu <= double(r.threads) * wall + 0.01);
        QVERIFY(r.checksum != 0);
    }

    void cancelAndMissingModel()
    {
        NullProgress cancelled;
        cancelled.cancel();
        QTemporaryDir dir;
        QVERIFY_THROWS_EXCEPTION(Error, benchStats(dir.filePath(QStringLiteral("none")).toStdString(), cancelled));
        if (modelFormats().empty())
            return;
        const std::string out = dir.filePath(QStringLiteral("tiny")).toStdString();
        NullProgress progress;
        writeDemoModel(out, DemoOptions::defaults(), progress);
        QVERIFY_THROWS_EXCEPTION(Cancelled, benchStats(out, cancelled));
    }
};

QTEST_GUILESS_MAIN(TestStatsBench)
#include "tst_statsbench.moc"
