// Calibration and evaluation from the window: the jobs run, the activation view shows the selected
// layer's input statistics beside its weights, the evaluation table gets the perplexity the core computes
// for the same settings. Screenshot: test-output/activations.png.
#include <QApplication>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTabWidget>
#include <QTest>

#include "ActivationView.h"
#include "CalibrationDock.h"
#include "MainWindow.h"
#include "ModelDock.h"
#include "ModelSession.h"
#include "TestData.h"
#include "common/Progress.h"
#include "eval/CalibrationRun.h"
#include "eval/Evaluate.h"
#include "eval/TextSource.h"
#include "model/Forward.h"
#include "model/Model.h"
#include "plots/ChannelPlot.h"
#include "plots/HistogramPlot.h"
#include "stats/ActivationStats.h"

using namespace qs::ui;

class TestCalibrationView : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("QuantScopeTest"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_calibrationview"));
    }

    void calibrateAndEvaluate()
    {
        QS_REQUIRE_TESTDATA(modelPath, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(textPath, "text/tinystories_sample.txt");
        MainWindow w;
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        ModelSession *session = w.session();
        QSignalSpy opened(session, &ModelSession::modelOpened);
        w.openPath(modelPath);
        QTRY_COMPARE_WITH_TIMEOUT(opened.size(), 1, 10000);
        QTRY_VERIFY_WITH_TIMEOUT(session->stats() != nullptr, 20000);

        CalibrationDock *dock = w.calibrationDock();
        dock->setCalibrationText(textPath);
        dock->setCalibrationSize(8, 128);
        QSignalSpy calibrated(session, &ModelSession::calibrationChanged);
        dock->startCalibration();
        QTRY_VERIFY_WITH_TIMEOUT(session->calibration() != nullptr, 60000);
        const auto calibration = session->calibration();
        QCOMPARE(int(calibration->calibration.samples.size()), 8);
        // 5 blocks × 4 inputs (the LM head input is not observed by default).
        QCOMPARE(dock->activationTable()->rowCount(), int(calibration->stats.size()));
        QVERIFY(dock->activationTable()->rowCount() >= 20);

        // Select block 1's gate_proj: the activation view shows mlp_in of block 1.
        const auto model = session->model();
        int gate = -1;
        for (size_t i = 0; i < model->tensors.size(); ++i)
            if (model->tensors[i].name == "model.layers.1.mlp.gate_proj")
                gate = int(i);
        QVERIFY(gate >= 0);
        w.plotTabs()->setCurrentWidget(w.activationView());
        qobject_cast<ModelDock *>(w.modelDock())->selectTensor(gate);
        QCOMPARE(w.activationView()->tensorIndex(), gate);
        const qs::core::InputActivationStats *a = session->activationsFor(gate);
        QVERIFY(a);
        QCOMPARE(a->block, 1);
        QCOMPARE(a->input, qs::core::LinearInput::MlpIn);
        QCOMPARE(a->tokens, uint64_t(8 * 128));
        uint64_t total = 0;
        for (const auto &b : w.activationView()->histogram()->bins())
            total += b.count;
        QCOMPARE(total, a->tokens * uint64_t(a->cols));
        QTest::qWait(50);
        QVERIFY(w.grab().save(qs::test::outputDir() + QStringLiteral("/activations.png")));

        // Evaluation: the table shows what the core computes for the same settings.
        dock->setEvaluationText(textPath);
        dock->setEvaluationContext(128, 4);
        QSignalSpy evaluated(session, &ModelSession::evaluationsChanged);
        dock->startEvaluation();
        QTRY_VERIFY_WITH_TIMEOUT(!session->evaluations().isEmpty(), 60000);
        QCOMPARE(dock->evaluationTable()->rowCount(), 1);
        qs::core::NullProgress progress;
        const qs::core::TokenizedText tokens = qs::core::tokenizeTextFile(*model, textPath.toStdString(), progress);
        qs::core::ForwardEngine engine(model);
        qs::core::EvalOptions options;
        options.ctx = 128;
        options.maxChunks = 4;
        const qs::core::PerplexityResult expected = qs::core::evaluatePerplexity(engine, tokens.tokens, options, progress);
        const auto got = session->evaluations().first().result;
        QCOMPARE(got->tokensScored, expected.tokensScored);
        QCOMPARE(got->perplexity, expected.perplexity);
        QCOMPARE(dock->evaluationTable()->item(0, 1)->data(Qt::UserRole).toDouble(), expected.perplexity);
    }
};

QTEST_MAIN(TestCalibrationView)
#include "tst_calibrationview.moc"
