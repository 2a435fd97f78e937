// Pareto front against a brute-force dominance check.
#include <QTest>

#include <cmath>
#include <random>

#include "eval/Pareto.h"

using namespace qs::core;

class TestPareto : public QObject
{
    Q_OBJECT
private slots:
    void smallExample()
    {
        // (bpw, ppl): 4.1/6.0 and 8.5/5.5 and 16/5.4 are on the front; 4.5/6.2 and 8.5/5.6 are dominated.
        const std::vector<ParetoPoint> p{{4.5, 6.2}, {4.1, 6.0}, {8.5, 5.5}, {16, 5.4}, {8.5, 5.6}, {NAN, 1.0}};
        QCOMPARE(paretoFront(p), (std::vector<int>{1, 2, 3}));
        QVERIFY(paretoFront({}).empty());
    }
    void matchesBruteForce()
    {
        std::mt19937 rng(7);
        std::uniform_int_distribution<int> d(0, 20);
        for (int trial = 0; trial < 200; ++trial) {
            std::vector<ParetoPoint> p(size_t(1 + trial % 17));
            for (auto &x : p)
                x = {double(d(rng)), double(d(rng))};
            std::vector<int> expected;
            for (int i = 0; i < int(p.size()); ++i) {
                bool dominated = false;
                for (int j = 0; j < int(p.size()); ++j) {
                    const bool le = p[j].cost <= p[i].cost && p[j].loss <= p[i].loss;
                    const bool lt = p[j].cost < p[i].cost || p[j].loss < p[i].loss;
                    dominated |= j != i && le && lt;
                }
                // Exact duplicates: the front keeps one of them.
                bool duplicateEarlier = false;
                for (int j = 0; j < i; ++j)
                    duplicateEarlier |= p[j].cost == p[i].cost && p[j].loss == p[i].loss;
                if (!dominated && !duplicateEarlier)
                    expected.push_back(i);
            }
            std::vector<int> got = paretoFront(p);
            QCOMPARE(got.size(), expected.size());
            for (int i : got) {
                bool found = false;
                for (int e : expected)
                    found |= p[e].cost == p[i].cost && p[e].loss == p[i].loss;
                QVERIFY(found);
            }
        }
    }
};

QTEST_GUILESS_MAIN(TestPareto)
#include "tst_pareto.moc"
