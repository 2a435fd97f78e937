// The same stories260K weights in three formats must give the same canonical model: GGUF (Meta q/k
// order), the Hugging Face F32 folder (rotate-half order) and llama2.c (Meta order) exactly, and the
// sharded BF16 Hugging Face folder within bfloat16 rounding. This is the end-to-end check of every
// reader's name mapping, shapes and q/k permutation.
#include <QTest>

#include <cmath>
#include <cstring>

#include "TestData.h"
#include "common/Error.h"
#include "common/Half.h"
#include "io/FormatRegistry.h"
#include "io/GgufReader.h"

using namespace qs::core;

namespace {

std::string str(const QString &s) { return s.toStdString(); }

} // namespace

class TestCrossFormat : public QObject
{
    Q_OBJECT
private slots:
    void sameModelInEveryFormat_data()
    {
        QTest::addColumn<QString>("other");
        QTest::addColumn<bool>("bf16");
        QTest::newRow("hf-f32") << QStringLiteral("models/stories260K-hf") << false;
        QTest::newRow("llama2c") << QStringLiteral("models/stories260K-llama2c/stories260K.bin") << false;
        QTest::newRow("hf-bf16-sharded") << QStringLiteral("models/stories260K-hf-bf16-sharded") << true;
    }
    void sameModelInEveryFormat()
    {
        QFETCH(QString, other);
        QFETCH(bool, bf16);
        QS_REQUIRE_TESTDATA(ggufPath, "models/stories260K.gguf");
        const QString otherPath = qs::test::testDataPath(other);
        if (!QFileInfo::exists(otherPath)) {
            if (qs::test::inCi())
                QFAIL(qPrintable(QStringLiteral("test data missing: ") + otherPath));
            QSKIP(qPrintable(QStringLiteral("test data missing: ") + otherPath));
        }
        const std::unique_ptr<Model> gguf = GgufReader::open(str(ggufPath));
        const std::unique_ptr<Model> model = openModel(str(otherPath));

        const HyperParams &a = gguf->hparams, &b = model->hparams;
        QCOMPARE(b.hiddenSize, a.hiddenSize);
        QCOMPARE(b.intermediateSize, a.intermediateSize);
        QCOMPARE(b.numLayers, a.numLayers);
        QCOMPARE(b.numHeads, a.numHeads);
        QCOMPARE(b.numKvHeads, a.numKvHeads);
        QCOMPARE(b.headDim, a.headDim);
        QCOMPARE(b.vocabSize, a.vocabSize);

        // Every weight the GGUF has exists in the other model with the same shape and values. The GGUF
        // keeps a separate output.weight; llama2.c ties it to the embedding, so lm_head is compared too.
        QCOMPARE(model->tensors.size(), gguf->tensors.size());
        int compared = 0;
        double worst = 0;
        int notNearestEven = 0;
        for (const Tensor &t : gguf->tensors) {
            const Tensor *u = model->find(t.name);
            QVERIFY2(u, t.name.c_str());
            QCOMPARE(u->rows, t.rows);
            QCOMPARE(u->cols, t.cols);
            QCOMPARE(u->role, t.role);
            QCOMPARE(u->block, t.block);
            const std::vector<float> x = gguf->readMatrix(t);
            const std::vector<float> y = model->readMatrix(*u);
            for (size_t i = 0; i < x.size(); ++i) {
                if (!bf16) {
                    if (std::memcmp(&x[i], &y[i], sizeof(float)) != 0)
                        QFAIL(qPrintable(QStringLiteral("%1 element %2: gguf %3, other %4")
                                             .arg(QString::fromStdString(t.name))
                                             .arg(i)
                                             .arg(double(x[i]))
                                             .arg(double(y[i]))));
                    continue;
                }
                // The BF16 folder was rounded from these F32 values to nearest-even.
                if (bf16ToFloat(floatToBf16(x[i])) != y[i])
                    ++notNearestEven;
                // bfloat16 keeps 8 significant bits: rounding moves a value by at most 2^-8 of itself.
                const double err = std::fabs(double(x[i]) - double(y[i]));
                const double bound = std::ldexp(std::fabs(double(x[i])), -8) + 1e-30;
                worst = std::max(worst, err / bound);
                if (err > bound)
                    QFAIL(qPrintable(QStringLiteral("%1 element %2: gguf %3, bf16 %4")
                                         .arg(QString::fromStdString(t.name))
                                         .arg(i)
                                         .arg(double(x[i]))
                                         .arg(double(y[i]))));
            }
            ++compared;
        }
        QCOMPARE(compared, 48);
        if (bf16)
            qInfo("worst bf16 difference: %.3f of the bound; %d values not rounded to nearest-even", worst,
                  notNearestEven);
        QCOMPARE(notNearestEven, 0);
    }
};

QTEST_GUILESS_MAIN(TestCrossFormat)
#include "tst_crossformat.moc"
