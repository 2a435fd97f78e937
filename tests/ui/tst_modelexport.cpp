// File › Export from the window: the open model as GGUF, and a run quantized in this session (no RUN_DIR
// on disk) as a GPTQ checkpoint folder; both are read back with the core readers. Errors reach the log.
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <filesystem>

#include "CalibrationDock.h"
#include "JobRunner.h"
#include "MainWindow.h"
#include "ModelSession.h"
#include "PlanDock.h"
#include "PlanModel.h"
#include "RunsModel.h"
#include "TestData.h"
#include "io/FormatRegistry.h"

using namespace qs;
using namespace qs::ui;

class TestModelExport : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_modelexport"));
    }

    void exportModelAndRun()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        MainWindow w;
        QSignalSpy opened(w.session(), &ModelSession::modelOpened);
        w.openPath(modelPath);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);
        JobRunner *runner = w.session()->runner();
        QSignalSpy finished(runner, &JobRunner::finished);
        QSignalSpy failed(runner, &JobRunner::failed);

        // The float model as GGUF F32: the same weights read back.
        ModelExportRequest gguf;
        gguf.format = QStringLiteral("gguf");
        gguf.ggufType = QStringLiteral("F32");
        gguf.out = tmp.filePath(QStringLiteral("model.gguf"));
        const JobId a = w.exportModel(0, gguf);
        QVERIFY(a != 0);
        QTRY_VERIFY_WITH_TIMEOUT(finished.contains(QVariantList{QVariant::fromValue<JobId>(a)}) || !failed.isEmpty(), 60000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        const auto original = w.session()->model();
        const auto exported = core::openModel(gguf.out.toStdString());
        const core::Tensor &q = exported->tensor("model.layers.0.self_attn.q_proj");
        QCOMPARE(exported->readMatrix(q), original->readMatrix(original->tensor("model.layers.0.self_attn.q_proj")));

        // A run quantized here (8-bit RTN everywhere, per channel so the 172-wide MLP packs into words),
        // exported as a GPTQ folder through a temporary RUN_DIR that is removed afterwards.
        w.calibrationDock()->setCalibrationText(textPath);
        w.calibrationDock()->setCalibrationSize(4, 64);
        w.calibrationDock()->setEvaluationText(QString());
        PlanModel *plan = w.findChild<PlanDock *>()->planModel();
        core::MethodConfig rtn = core::MethodConfig::defaults("rtn");
        rtn.set("bits", int64_t(8));
        rtn.set("group_size", int64_t(-1));
        QCOMPARE(plan->applyRule(QStringLiteral("model.layers.*"), rtn), 35);
        QSignalSpy runDone(w.runsModel(), &RunsModel::runFinished);
        w.startQuantization();
        QTRY_COMPARE_WITH_TIMEOUT(runDone.size(), 1, 120000);
        const auto run = w.runsModel()->runs().at(0);
        QVERIFY2(run->state == RunsModel::State::Done, qPrintable(run->error));
        QVERIFY(run->runDir.isEmpty());

        ModelExportRequest gptq;
        gptq.format = QStringLiteral("gptq");
        gptq.out = tmp.filePath(QStringLiteral("model-gptq"));
        const JobId b = w.exportModel(run->id, gptq);
        QVERIFY(b != 0);
        QTRY_VERIFY_WITH_TIMEOUT(finished.contains(QVariantList{QVariant::fromValue<JobId>(b)}) || !failed.isEmpty(), 60000);
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        QVERIFY(std::filesystem::exists(gptq.out.toStdString() + "/config.json"));
        const auto checkpoint = core::openModel(gptq.out.toStdString());
        QCOMPARE(checkpoint->tensor("model.layers.0.mlp.down_proj").dtype, core::DType::GPTQ);
        // The temporary RUN_DIR is gone.
        for (const auto &entry : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
            QVERIFY2(entry.path().filename().string().rfind(
                         "quantscope-export-" + std::to_string(QCoreApplication::applicationPid()) + "-", 0) != 0,
                     entry.path().c_str());

        // A bad output path fails with a message naming it; nothing is left there.
        ModelExportRequest bad = gguf;
        bad.out = tmp.filePath(QStringLiteral("missing-folder/model.gguf"));
        const JobId c = w.exportModel(0, bad);
        QTRY_VERIFY_WITH_TIMEOUT(!failed.isEmpty(), 60000);
        QCOMPARE(failed.first().at(0).value<JobId>(), c);
        QVERIFY2(failed.first().at(1).toString().contains(QStringLiteral("missing-folder")),
                 qPrintable(failed.first().at(1).toString()));
        QVERIFY(!std::filesystem::exists(bad.out.toStdString()));
    }
};

QTEST_MAIN(TestModelExport)
#include "tst_modelexport.moc"
