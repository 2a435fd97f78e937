// The method registry: the table (names, bits, parameters), MethodConfig validation with messages that
// name the parameter and its allowed range, the JSON round trip in the cli.md plan vocabulary, "auto"
// grid resolution, and the converters to each method's options.
#include <QTest>

#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "quant/MethodRegistry.h"

using namespace qs::core;
using nlohmann::json;

namespace {

std::string errorOf(const json &j)
{
    try {
        MethodConfig::fromJson(j, "plan rule 2");
    } catch (const Error &e) {
        return e.what();
    }
    return {};
}

bool contains(const std::string &s, const char *part)
{
    return s.find(part) != std::string::npos;
}

} // namespace

class TestMethodRegistry : public QObject
{
    Q_OBJECT
private slots:
    void table()
    {
        QCOMPARE(quantMethodNames(), std::string("rtn, zeroquant, gptq, smoothquant, awq, efficientqat"));
        for (const MethodInfo &m : quantMethods()) {
            QVERIFY(!m.description.empty());
            QVERIFY(!m.supportedBits.empty());
            QVERIFY(m.param("bits") && m.param("group_size") && m.param("symmetric"));
            QVERIFY(m.param("grid") || m.name == "efficientqat"); // EfficientQAT's quantizer is fixed (§7.1)
            for (const ParamSpec &p : m.params)
                QVERIFY2(!p.help.empty(), p.name.c_str());
            MethodConfig::defaults(m.name).validate(); // defaults are valid
        }
        QVERIFY(!quantMethod("rtn").needsCalibration);
        QVERIFY(!quantMethod("zeroquant").needsCalibration);
        QVERIFY(quantMethod("gptq").needsCalibration && quantMethod("gptq").calibration.hessian);
        QVERIFY(quantMethod("smoothquant").calibration.activationAbsMax);
        QVERIFY(quantMethod("awq").calibration.inputCache && quantMethod("awq").calibration.sharedInputGroups);
        const MethodInfo &g = quantMethod("gptq");
        QCOMPARE(std::get<double>(g.param("damp")->defaultValue), 0.01);
        QCOMPARE(std::get<int64_t>(g.param("block_size")->defaultValue), int64_t(128));
        QCOMPARE(std::get<bool>(g.param("act_order")->defaultValue), false);
        QCOMPARE(std::get<double>(quantMethod("smoothquant").param("alpha")->defaultValue), 0.5);
        QCOMPARE(std::get<int64_t>(quantMethod("awq").param("n_grid")->defaultValue), int64_t(20));
        QCOMPARE(std::get<int64_t>(quantMethod("awq").param("clip_tokens")->defaultValue), int64_t(512));
        QCOMPARE(std::get<double>(quantMethod("awq").param("max_shrink")->defaultValue), 0.5);
        QCOMPARE(std::get<int64_t>(quantMethod("zeroquant").param("activation_bits")->defaultValue), int64_t(8));
        try {
            quantMethod("omniquant");
            QFAIL("no error");
        } catch (const Error &e) {
            QVERIFY(contains(e.what(), "known: rtn, zeroquant, gptq, smoothquant, awq, efficientqat"));
        }
        const json t = methodTableJson();
        QVERIFY(t.size() == 6);
        QVERIFY(t[2]["name"] == "gptq");
        QVERIFY(t[2]["params"].size() >= 10u);
        QVERIFY(t[2]["needs_calibration"] == true);
    }

    void planExamples()
    {
        // specs/cli.md's example plan.
        const MethodConfig def = MethodConfig::fromJson(
            json::parse(R"({"method": "rtn", "bits": 8, "group_size": 128, "symmetric": true})"));
        QCOMPARE(def.getInt("bits"), int64_t(8));
        QCOMPARE(def.grid(), GridId::SymGptq);
        const MethodConfig g = MethodConfig::fromJson(json::parse(
            R"({"match": "model.layers.*.mlp.down_proj", "method": "gptq", "bits": 4, "group_size": 32,
                "act_order": true, "damp": 0.01})"));
        const GptqOptions go = toGptqOptions(g);
        QCOMPARE(go.spec.bits, 4);
        QCOMPARE(go.spec.groupSize, 32);
        QCOMPARE(go.spec.grid, GridId::MinMax);
        QVERIFY(go.actOrder);
        QCOMPARE(go.percDamp, 0.01);
        QCOMPARE(go.blockSize, 128);
        const MethodConfig a = MethodConfig::fromJson(
            json::parse(R"({"match": "model.layers.*.self_attn.*", "method": "awq", "bits": 4, "group_size": 64})"));
        const AwqOptions ao = toAwqOptions(a);
        QCOMPARE(ao.spec.groupSize, 64);
        QCOMPARE(ao.spec.grid, GridId::MinMaxAwq);
        QCOMPARE(ao.nGrid, 20);
        QVERIFY(ao.clip && !ao.clipQK);
        // A damp given as an integer is a number too; "bits": 4.0 is an integer.
        QCOMPARE(MethodConfig::fromJson(json::parse(R"({"method": "gptq", "damp": 0, "bits": 4.0})")).getDouble("damp"), 0.0);
    }

    void roundTrip()
    {
        for (const MethodInfo &m : quantMethods()) {
            const MethodConfig d = MethodConfig::defaults(m.name);
            QCOMPARE(MethodConfig::fromJson(d.toJson()), d);
        }
        MethodConfig c = MethodConfig::defaults("gptq");
        c.set("bits", int64_t(3));
        c.set("group_size", int64_t(-1));
        c.set("damp", 0.05);
        c.set("act_order", true);
        c.set("static_groups", true);
        c.set("grid", std::string("sym_gptq"));
        c.validate();
        const json j = c.toJson();
        QVERIFY(j["method"] == "gptq");
        QVERIFY(j["group_size"] == -1);
        QVERIFY(j["damp"] == 0.05);
        const MethodConfig back = MethodConfig::fromJson(json::parse(j.dump()));
        QCOMPARE(back, c);
        QCOMPARE(back.grid(), GridId::SymGptq);

        MethodConfig s = MethodConfig::defaults("smoothquant");
        s.set("alpha", 0.85);
        s.set("activation_scheme", std::string("per_tensor_static"));
        QCOMPARE(MethodConfig::fromJson(json::parse(s.toJson().dump())), s);
        const SmoothQuantOptions so = toSmoothQuantOptions(s);
        QCOMPARE(so.alpha, 0.85);
        QCOMPARE(so.activationScheme, ActivationScheme::PerTensorStatic);
        QCOMPARE(so.weightSpec.grid, GridId::Sym);
        QCOMPARE(so.weightSpec.bits, 8);
        QCOMPARE(so.weightSpec.groupSize, -1);

        MethodConfig z = MethodConfig::defaults("zeroquant");
        z.set("row_groups", true);
        z.set("rows_per_group", int64_t(16));
        z.validate();
        const ZeroQuantOptions zo = toZeroQuantOptions(z);
        QVERIFY(zo.rowGroups);
        QCOMPARE(zo.weightSpec().rowGroupSize, 16);
        QCOMPARE(zo.weightSpec().groupSize, -1);
        QCOMPARE(zo.grid, GridId::SymFull);
        QCOMPARE(toRtnSpec(MethodConfig::defaults("rtn")).grid, GridId::MinMax);
        QVERIFY_THROWS_EXCEPTION(Error, toGptqOptions(z));
    }

    void autoGrids()
    {
        struct Case
        {
            const char *method;
            bool sym;
            GridId grid;
        };
        const Case cases[] = { { "rtn", false, GridId::MinMax },         { "rtn", true, GridId::SymGptq },
                               { "gptq", false, GridId::MinMax },        { "gptq", true, GridId::SymGptq },
                               { "awq", false, GridId::MinMaxAwq },      { "awq", true, GridId::Sym },
                               { "zeroquant", true, GridId::SymFull },   { "zeroquant", false, GridId::MinMax },
                               { "smoothquant", true, GridId::Sym },     { "smoothquant", false, GridId::MinMax } };
        for (const Case &c : cases) {
            MethodConfig m = MethodConfig::defaults(c.method);
            m.set("symmetric", c.sym);
            QCOMPARE(m.grid(), c.grid);
        }
        // An explicit grid wins over symmetric.
        MethodConfig m = MethodConfig::defaults("gptq");
        m.set("grid", std::string("gguf_q4_0"));
        m.set("group_size", int64_t(32));
        m.validate();
        QCOMPARE(m.quantSpec().grid, GridId::GgufQ4_0);
    }

    void validationMessages()
    {
        std::string e = errorOf(json::parse(R"({"method": "gptq", "bits": 9})"));
        QVERIFY2(contains(e, "plan rule 2: bits:") && contains(e, "2..8"), e.c_str());
        e = errorOf(json::parse(R"({"method": "smoothquant", "bits": 3})"));
        QVERIFY2(contains(e, "bits:") && contains(e, "3"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "damp": 1.5})"));
        QVERIFY2(contains(e, "damp: 1.5 is outside 0..1"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "group_size": 0})"));
        QVERIFY2(contains(e, "group_size: 0 (per tensor) is not supported by gptq"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "group_size": -2})"));
        QVERIFY2(contains(e, "group_size:") && contains(e, "-1.."), e.c_str());
        e = errorOf(json::parse(R"({"method": "rtn", "act_order": true})"));
        QVERIFY2(contains(e, "act_order: method 'rtn' has no such parameter") && contains(e, "group_size"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "bits": "4"})"));
        QVERIFY2(contains(e, "bits: expected an integer"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "bits": 4.5})"));
        QVERIFY2(contains(e, "bits: expected an integer"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "act_order": 1})"));
        QVERIFY2(contains(e, "act_order: expected true or false"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "grid": "nf4"})"));
        QVERIFY2(contains(e, "grid: 'nf4' is not one of auto, minmax"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "grid": "gguf_q4_0", "bits": 8, "group_size": 32})"));
        QVERIFY2(contains(e, "bits: grid 'gguf_q4_0' needs bits 4"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "grid": "gguf_q8_0", "bits": 8})"));
        QVERIFY2(contains(e, "group_size: grid 'gguf_q8_0' needs group_size 32"), e.c_str());
        e = errorOf(json::parse(R"({"method": "gptq", "grid": "gguf_q4_0", "group_size": 32, "act_order": true})"));
        QVERIFY2(contains(e, "act_order:") && contains(e, "static_groups"), e.c_str());
        QVERIFY(errorOf(json::parse(R"({"method": "gptq", "grid": "gguf_q4_0", "group_size": 32, "act_order": true,
                                       "static_groups": true})")).empty());
        e = errorOf(json::parse(R"({"method": "zeroquant", "activation_bits": 1})"));
        QVERIFY2(contains(e, "activation_bits"), e.c_str());
        e = errorOf(json::parse(R"({"method": "hqq"})"));
        QVERIFY2(contains(e, "method: unknown quantization method 'hqq'"), e.c_str());
        e = errorOf(json::parse(R"({"bits": 4})"));
        QVERIFY2(contains(e, "method: missing"), e.c_str());
        e = errorOf(json::parse(R"([1, 2])"));
        QVERIFY2(!e.empty(), e.c_str());

        MethodConfig c = MethodConfig::defaults("awq");
        QVERIFY_THROWS_EXCEPTION(Error, c.set("bits", std::string("four")));
        QVERIFY_THROWS_EXCEPTION(Error, c.set("nope", int64_t(1)));
        QVERIFY_THROWS_EXCEPTION(Error, c.getDouble("bits"));
        c.set("max_shrink", int64_t(0)); // an int is accepted for a double
        QCOMPARE(c.getDouble("max_shrink"), 0.0);
    }
};

QTEST_GUILESS_MAIN(TestMethodRegistry)
#include "tst_methodregistry.moc"
