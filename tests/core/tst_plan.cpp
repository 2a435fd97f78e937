// Plan files (specs/cli.md "Plan files"): globs and regexes over canonical names, later rules win, skip,
// the merge rule with the default block, errors that name the rule and the parameter, save/load round trip.
#include <QTest>

#include <functional>
#include <nlohmann/json.hpp>

#include "TestData.h"
#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "quant/Plan.h"

using namespace qs::core;
using nlohmann::json;

namespace {

std::string errorText(const std::function<void()> &f)
{
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return {};
}

const char *const kQ0 = "model.layers.0.self_attn.q_proj";
const char *const kDown3 = "model.layers.3.mlp.down_proj";
const char *const kDown12 = "model.layers.12.mlp.down_proj";

} // namespace

class TestPlan : public QObject
{
    Q_OBJECT
private slots:
    void globs()
    {
        QVERIFY(globMatch("model.layers.*.mlp.down_proj", kDown3));
        QVERIFY(globMatch("model.layers.*.mlp.down_proj", kDown12));
        QVERIFY(globMatch("*", "lm_head"));
        QVERIFY(globMatch("*down_proj", kDown12));
        // '*' crosses dots.
        QVERIFY(globMatch("model.*.q_proj", kQ0));
        QVERIFY(globMatch("model.layers.*", kQ0));
        // '?' is exactly one character.
        QVERIFY(globMatch("model.layers.?.mlp.down_proj", kDown3));
        QVERIFY(!globMatch("model.layers.?.mlp.down_proj", kDown12));
        QVERIFY(globMatch("model.layers.??.mlp.down_proj", kDown12));
        // Whole-name match; '.' is literal.
        QVERIFY(!globMatch("model.layers.*.mlp", kDown3));
        QVERIFY(!globMatch("model.layers.3.mlp.down", kDown3));
        QVERIFY(!globMatch("model.layers.3xmlp.down_proj", kDown3));
        QVERIFY(globMatch("lm_head", "lm_head"));
        QVERIFY(!globMatch("lm_head", "lm_head2"));
        QVERIFY(globMatch("a*b*c", "aXXbYYbc"));
        QVERIFY(!globMatch("a*b*c", "aXXbYYb"));
        QVERIFY(globMatch("**", ""));
        QVERIFY(!globMatch("?", ""));
    }

    void regexes()
    {
        const NamePattern p("re:model\\.layers\\.[0-2]\\..*_proj");
        QVERIFY(p.isRegex());
        QVERIFY(p.matches(kQ0));
        QVERIFY(!p.matches(kDown3));
        QVERIFY(!p.matches(kDown12));
        // Whole-name: a regex matching a substring does not count.
        QVERIFY(!NamePattern("re:down_proj").matches(kDown3));
        QVERIFY(NamePattern("re:.*down_proj").matches(kDown3));
        const std::string e = errorText([] { (void)NamePattern("re:model[", "plan: rules[4]", "match"); });
        QVERIFY2(e.find("plan: rules[4]: match: bad regular expression 'model['") != std::string::npos, e.c_str());
    }

    void cliExampleAndLaterRulesWin()
    {
        const json j = json::parse(R"({
          "default": {"method": "rtn", "bits": 8, "group_size": 128, "symmetric": true},
          "rules": [
            {"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32,
             "act_order": true, "damp": 0.01},
            {"match": "model.layers.*.self_attn.*", "method": "awq", "bits": 4, "group_size": 64},
            {"match": "re:model\\.layers\\.0\\.self_attn\\.q_proj", "method": "rtn", "bits": 6}
          ],
          "skip": ["lm_head", "model.embed_tokens", "model.layers.1.mlp.*"]
        })");
        const Plan plan = Plan::fromJson(j);
        QCOMPARE(int(plan.rules().size()), 3);

        const PlannedLayer down = plan.resolveLayer(kDown3, TensorRole::Down);
        QVERIFY(down.quantize);
        QCOMPARE(down.config.method(), std::string("gptq"));
        QCOMPARE(down.config.getInt("bits"), int64_t(4));
        QCOMPARE(down.config.getInt("group_size"), int64_t(32));
        QVERIFY(down.config.getBool("act_order"));
        QCOMPARE(down.rules, std::vector<int> { 0 });

        const PlannedLayer k = plan.resolveLayer("model.layers.0.self_attn.k_proj", TensorRole::K);
        QCOMPARE(k.config.method(), std::string("awq"));
        QCOMPARE(k.config.getInt("group_size"), int64_t(64));

        // Rules 1 and 2 both match q_proj of block 0: the later one (rtn 6) wins. It switches from awq back
        // to rtn, so rtn's registry defaults apply, not the default block's (group 128 either way, but
        // symmetric is rtn's default false, not the default block's true).
        const PlannedLayer q = plan.resolveLayer(kQ0, TensorRole::Q);
        QCOMPARE(q.config.method(), std::string("rtn"));
        QCOMPARE(q.config.getInt("bits"), int64_t(6));
        QCOMPARE(q.config.getBool("symmetric"), false);
        QCOMPARE(q.rules, (std::vector<int> { 1, 2 }));

        // Unmatched block linears take the default.
        const PlannedLayer gate = plan.resolveLayer("model.layers.0.mlp.gate_proj", TensorRole::Gate);
        QVERIFY(gate.quantize);
        QVERIFY(gate.config == MethodConfig::fromJson(j["default"], "t", {}));

        // Skip wins over rules (down_proj of block 1 is matched by rule 0 and by the skip glob).
        const PlannedLayer skipped = plan.resolveLayer("model.layers.1.mlp.down_proj", TensorRole::Down);
        QVERIFY(!skipped.quantize);
        QVERIFY(skipped.reason.find("model.layers.1.mlp.*") != std::string::npos);
    }

    void defaultInheritance()
    {
        const Plan plan = Plan::fromJson(json::parse(R"({
          "default": {"method": "gptq", "bits": 3, "group_size": 64, "damp": 0.05},
          "rules": [
            {"match": "*down_proj", "bits": 4},
            {"match": "*up_proj", "method": "gptq", "act_order": true},
            {"match": "*gate_proj", "method": "rtn"},
            {"match": "*gate_proj", "group_size": 32},
            {"match": "*o_proj", "method": "rtn"},
            {"match": "*o_proj", "method": "gptq"}
          ]
        })"));
        // No method: the default's values stay, the rule's parameter is set.
        PlannedLayer l = plan.resolveLayer(kDown3, TensorRole::Down);
        QCOMPARE(l.config.method(), std::string("gptq"));
        QCOMPARE(l.config.getInt("bits"), int64_t(4));
        QCOMPARE(l.config.getInt("group_size"), int64_t(64));
        QCOMPARE(l.config.getDouble("damp"), 0.05);
        // The same method as the default: inherits the default block's values too.
        l = plan.resolveLayer("model.layers.0.mlp.up_proj", TensorRole::Up);
        QCOMPARE(l.config.getInt("bits"), int64_t(3));
        QCOMPARE(l.config.getDouble("damp"), 0.05);
        QVERIFY(l.config.getBool("act_order"));
        // Another method: its registry defaults, then later method-less rules apply to it.
        l = plan.resolveLayer("model.layers.0.mlp.gate_proj", TensorRole::Gate);
        QCOMPARE(l.config.method(), std::string("rtn"));
        QCOMPARE(l.config.getInt("bits"), MethodConfig::defaults("rtn").getInt("bits"));
        QCOMPARE(l.config.getInt("group_size"), int64_t(32));
        // Switching away and back resets to the method's defaults (nothing carries over).
        l = plan.resolveLayer("model.layers.0.self_attn.o_proj", TensorRole::O);
        QVERIFY(l.config == MethodConfig::defaults("gptq"));
        // The default alone never quantizes embed / lm_head; a matching rule does.
        QVERIFY(!plan.resolveLayer("lm_head", TensorRole::LmHead).quantize);
        QVERIFY(!plan.resolveLayer("model.embed_tokens", TensorRole::Embed).quantize);
        Plan withHead = plan;
        withHead.addRule({ NamePattern("lm_head"), "rtn", { { "bits", int64_t(8) } } });
        const PlannedLayer head = withHead.resolveLayer("lm_head", TensorRole::LmHead);
        QVERIFY(head.quantize);
        QCOMPARE(head.config.getInt("bits"), int64_t(8));
    }

    void errorsNameRuleAndParameter_data()
    {
        QTest::addColumn<QString>("plan");
        QTest::addColumn<QString>("expected");
        QTest::newRow("unknown method") << R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "bits": 4},
            {"match": "*q_proj", "method": "frobnicate"}]})"
                                        << "plan: rules[1]: method: unknown quantization method 'frobnicate'";
        QTest::newRow("bits out of range")
            << R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "method": "gptq",
            "bits": 9}]})"
            << "plan: rules[0]: bits: 9 is outside 2..8";
        QTest::newRow("method-less bits out of range") << R"({"default": {"method": "rtn"}, "rules": [{"match": "*",
            "bits": 1}]})"
                                                       << "plan: rules[0]: bits: 1 is outside 2..8";
        QTest::newRow("unknown param") << R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "method": "rtn",
            "act_order": true}]})"
                                       << "plan: rules[0]: act_order:";
        QTest::newRow("param of no method")
            << R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "nonsense": 3}]})"
            << "plan: rules[0]: nonsense: no quantization method has such a parameter";
        QTest::newRow("wrong type")
            << R"({"default": {"method": "gptq"}, "rules": [{"match": "*", "act_order": "yes"}]})"
            << "plan: rules[0]: act_order: expected bool";
        QTest::newRow("missing match") << R"({"default": {"method": "rtn"}, "rules": [{"method": "rtn"}]})"
                                       << "plan: rules[0]: match: missing";
        // (A plain string here: moc misreads a raw string holding an unbalanced parenthesis.)
        QTest::newRow("bad regex")
            << "{\"default\": {\"method\": \"rtn\"}, \"rules\": [{\"match\": \"re:[\", \"bits\": 4}]}"
            << "plan: rules[0]: match: bad regular expression";
        QTest::newRow("bad default") << R"({"default": {"method": "rtn", "bits": 12}})"
                                     << "plan: default: bits:";
        QTest::newRow("missing default") << R"({"rules": []})"
                                         << "plan: default: missing";
        QTest::newRow("unknown key") << R"({"default": {"method": "rtn"}, "rulez": []})"
                                     << "plan: rulez: unknown key";
        QTest::newRow("skip not a list") << R"({"default": {"method": "rtn"}, "skip": "lm_head"})"
                                         << "plan: skip:";
        QTest::newRow("cross-parameter") << R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "method": "gptq",
            "group_size": 0}]})"
                                         << "plan: rules[0]: group_size: 0 (per tensor) is not supported by gptq";
    }
    void errorsNameRuleAndParameter()
    {
        QFETCH(QString, plan);
        QFETCH(QString, expected);
        const std::string e = errorText([&] { (void)Plan::fromJson(json::parse(plan.toStdString())); });
        QVERIFY2(e.find(expected.toStdString()) != std::string::npos, ("got: " + e).c_str());
    }

    void resolveErrorNamesRuleParameterAndLayer()
    {
        // act_order is a gptq parameter; rule 1 has no method, so it is checked per matched layer: the
        // down_proj layers were switched to gptq by rule 0, the up_proj ones are still rtn.
        const Plan plan = Plan::fromJson(json::parse(R"({"default": {"method": "rtn"}, "rules": [
            {"match": "*down_proj", "method": "gptq"}, {"match": "*mlp.*", "act_order": true}]})"));
        QVERIFY(plan.resolveLayer(kDown3, TensorRole::Down).config.getBool("act_order"));
        const std::string e = errorText([&] { (void)plan.resolveLayer("model.layers.0.mlp.up_proj", TensorRole::Up); });
        QVERIFY2(e.find("plan: rules[1]: act_order:") != std::string::npos, e.c_str());
        QVERIFY2(e.find("model.layers.0.mlp.up_proj") != std::string::npos, e.c_str());
    }

    void loadNamesTheFile()
    {
        const QString path = qs::test::outputDir() + "/tst_plan_bad.json";
        writeFileText(path, R"({"default": {"method": "rtn"}, "rules": [{"match": "*", "bits": 99}]})");
        const std::string e = errorText([&] { (void)Plan::load(path.toStdString()); });
        QVERIFY2(e.find(path.toStdString() + ": rules[0]: bits: 99") != std::string::npos, e.c_str());
        writeFileText(path, "{not json");
        const std::string e2 = errorText([&] { (void)Plan::load(path.toStdString()); });
        QVERIFY2(e2.find(path.toStdString() + ": not valid JSON") != std::string::npos, e2.c_str());
        const std::string e3 = errorText([&] { (void)Plan::load(path.toStdString() + ".missing"); });
        QVERIFY2(e3.find(".missing: cannot open") != std::string::npos, e3.c_str());
    }

    void saveLoadRoundTrip()
    {
        const Plan plan = Plan::fromJson(json::parse(R"({
          "default": {"method": "rtn", "bits": 8, "group_size": 128, "symmetric": true},
          "rules": [
            {"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32,
             "act_order": true, "damp": 0.01},
            {"match": "re:.*self_attn\\.[qk]_proj", "bits": 6},
            {"match": "*up_proj", "method": "smoothquant", "alpha": 0.85}
          ],
          "skip": ["lm_head", "model.embed_tokens"]
        })"));
        const QString path = qs::test::outputDir() + "/tst_plan_roundtrip.json";
        plan.save(path.toStdString());
        const Plan back = Plan::load(path.toStdString());
        QVERIFY(back == plan);
        QVERIFY(back.toJson() == plan.toJson());
        // Rules are saved as written (no filled-in defaults), the default block in full.
        const json j = plan.toJson();
        QVERIFY(j["rules"][1] == json::parse(R"({"match": "re:.*self_attn\\.[qk]_proj", "bits": 6})"));
        QVERIFY(j["default"] == MethodConfig::fromJson(j["default"], "t", {}).toJson());
        // An empty skip list survives (and means: nothing skipped).
        Plan noSkip = plan;
        noSkip.clearSkip();
        QVERIFY(Plan::fromJson(noSkip.toJson()) == noSkip);
        QVERIFY(Plan::fromJson(noSkip.toJson()).skip().empty());
    }

    void resolveOnModel()
    {
        QS_REQUIRE_TESTDATA(dir, "models/stories260K-hf");
        const auto model = openModel(dir.toStdString());
        Plan plan; // default rtn, skip lm_head and embed
        std::vector<PlannedLayer> layers = plan.resolve(*model);
        // 5 blocks × 7 linears + embed + lm_head, in model order.
        QCOMPARE(int(layers.size()), 5 * 7 + 2);
        QCOMPARE(layers.front().name, std::string("model.embed_tokens"));
        QVERIFY(!layers.front().quantize);
        QCOMPARE(layers.back().name, std::string("lm_head"));
        QVERIFY(!layers.back().quantize);
        int quantized = 0;
        for (const PlannedLayer &l : layers) {
            quantized += l.quantize ? 1 : 0;
            QVERIFY(l.rows > 0 && l.cols > 0);
            if (l.role == TensorRole::Down) {
                QCOMPARE(l.cols, int64_t(172));
                QCOMPARE(l.config.method(), std::string("rtn"));
            }
        }
        QCOMPARE(quantized, 35);
        // Without the skip list, lm_head still needs a rule.
        plan.clearSkip();
        layers = plan.resolve(*model);
        QVERIFY(!layers.back().quantize);
        plan.addRule({ NamePattern("*"), "", { { "bits", int64_t(8) } } });
        layers = plan.resolve(*model);
        QVERIFY(layers.back().quantize);
        QVERIFY(layers.front().quantize);
    }

private:
    static void writeFileText(const QString &path, const char *text)
    {
        FILE *f = std::fopen(path.toUtf8().constData(), "wb");
        QVERIFY(f);
        std::fputs(text, f);
        std::fclose(f);
    }
};

QTEST_GUILESS_MAIN(TestPlan)
#include "tst_plan.moc"
