// The plan table: rows for every linear layer, edits of several rows as one undo step, bulk rules,
// invalid values refused with a reason, and the plan JSON it produces.
#include <QAbstractItemModelTester>
#include <QTest>
#include <QUndoStack>

#include <nlohmann/json.hpp>

#include "PlanModel.h"
#include "TestData.h"
#include "io/FormatRegistry.h"
#include "model/Model.h"

using namespace qs;
using namespace qs::ui;

class TestPlanModel : public QObject
{
    Q_OBJECT
private slots:
    void globs()
    {
        QVERIFY(globMatch(QStringLiteral("model.layers.*.mlp.down_proj"), QStringLiteral("model.layers.12.mlp.down_proj")));
        QVERIFY(!globMatch(QStringLiteral("model.layers.*.mlp.down_proj"), QStringLiteral("model.layers.1.mlp.up_proj")));
        QVERIFY(globMatch(QStringLiteral("*q_proj"), QStringLiteral("model.layers.0.self_attn.q_proj")));
        QVERIFY(globMatch(QStringLiteral("model.layers.?.self_attn.*"), QStringLiteral("model.layers.3.self_attn.v_proj")));
        QVERIFY(!globMatch(QStringLiteral("model.layers.?.self_attn.*"), QStringLiteral("model.layers.13.self_attn.v_proj")));
        QVERIFY(globMatch(QStringLiteral("re:model\\.layers\\.[0-2]\\..*"), QStringLiteral("model.layers.2.mlp.up_proj")));
        QVERIFY(!globMatch(QStringLiteral("re:model\\.layers\\.[0-2]\\..*"), QStringLiteral("model.layers.3.mlp.up_proj")));
    }

    void editsAreUndoable()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K.gguf");
        std::shared_ptr<const core::Model> model = core::openModel(path.toStdString());
        QUndoStack undo;
        PlanModel plan(&undo);
        QAbstractItemModelTester tester(&plan, QAbstractItemModelTester::FailureReportingMode::QtTest);
        core::MethodConfig def = core::MethodConfig::defaults("rtn");
        def.set("bits", int64_t(8));
        plan.setModel(model, def);
        QCOMPARE(plan.rowCount(), 5 * 7);
        QCOMPARE(undo.count(), 0);

        // Several rows in one step.
        QVERIFY(plan.setDataForRows({0, 1, 2}, PlanModel::BitsColumn, 4));
        QCOMPARE(undo.count(), 1);
        for (int r : {0, 1, 2})
            QCOMPARE(plan.rows()[size_t(r)].config.getInt("bits"), int64_t(4));
        QCOMPARE(plan.rows()[3].config.getInt("bits"), int64_t(8));
        undo.undo();
        QCOMPARE(plan.rows()[0].config.getInt("bits"), int64_t(8));
        undo.redo();
        QCOMPARE(plan.rows()[2].config.getInt("bits"), int64_t(4));

        // Changing the method keeps bits and group size where the new method accepts them.
        QVERIFY(plan.setDataForRows({0}, PlanModel::MethodColumn, QStringLiteral("gptq")));
        QCOMPARE(QString::fromStdString(plan.rows()[0].config.method()), QStringLiteral("gptq"));
        QCOMPARE(plan.rows()[0].config.getInt("bits"), int64_t(4));

        // Out-of-range values are refused with a reason and change nothing.
        const int steps = undo.count();
        QVERIFY(!plan.setDataForRows({0}, PlanModel::BitsColumn, 1));
        QVERIFY(!plan.lastError().isEmpty());
        QCOMPARE(undo.count(), steps);

        // Bulk rule: all down_proj -> 4-bit GPTQ g32, one step.
        core::MethodConfig gptq = core::MethodConfig::defaults("gptq");
        gptq.set("bits", int64_t(4));
        gptq.set("group_size", int64_t(32));
        QCOMPARE(plan.applyRule(QStringLiteral("model.layers.*.mlp.down_proj"), gptq), 5);
        QCOMPARE(undo.count(), steps + 1);
        int gptqRows = 0;
        for (const auto &r : plan.rows())
            gptqRows += (r.name.find("down_proj") != std::string::npos && r.config.method() == "gptq") ? 1 : 0;
        QCOMPARE(gptqRows, 5);

        // Skip a layer through the check box.
        QVERIFY(plan.setData(plan.index(4, PlanModel::QuantizeColumn), Qt::Unchecked, Qt::CheckStateRole));
        QVERIFY(!plan.rows()[4].quantize);

        // The plan JSON: RTN 8-bit is the most common config, so it is the default; the rest are rules.
        const nlohmann::json j = plan.toPlanJson();
        QCOMPARE(QString::fromStdString(j["default"]["method"].get<std::string>()), QStringLiteral("rtn"));
        QCOMPARE(j["default"]["bits"].get<int>(), 8);
        bool skipped = false;
        for (const auto &s : j["skip"])
            skipped |= s.get<std::string>() == plan.rows()[4].name;
        QVERIFY(skipped);
        QVERIFY(j["rules"].size() >= 5 + 3);

        // Undo everything back to the start.
        while (undo.canUndo())
            undo.undo();
        for (const auto &r : plan.rows()) {
            QCOMPARE(QString::fromStdString(r.config.method()), QStringLiteral("rtn"));
            QCOMPARE(r.config.getInt("bits"), int64_t(8));
            QVERIFY(r.quantize);
        }
    }
};

QTEST_MAIN(TestPlanModel)
#include "tst_planmodel.moc"
