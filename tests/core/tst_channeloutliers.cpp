// Outlier channels against a direct computation.
#include <QTest>

#include <cmath>
#include <limits>

#include "stats/ChannelOutliers.h"

using namespace qs::core;

class TestChannelOutliers : public QObject
{
    Q_OBJECT
private slots:
    void medianOddAndEven()
    {
        QCOMPARE(findOutlierChannels({3, 1, 2}).median, 2.0);
        QCOMPARE(findOutlierChannels({4, 1, 3, 2}).median, 2.5);
        QVERIFY(findOutlierChannels({}).channels.empty());
    }
    void marksChannelsAboveFactorTimesMedian()
    {
        std::vector<float> a(64, 1.0f);
        a[5] = 20.0f;
        a[40] = 4.5f;
        a[41] = 3.9f; // below 4 × median
        a[7] = std::numeric_limits<float>::quiet_NaN();
        const ChannelOutliers r = findOutlierChannels(a, 4.0);
        QCOMPARE(r.median, 1.0);
        QCOMPARE(r.threshold, 4.0);
        QCOMPARE(r.channels, (std::vector<int>{5, 40}));
    }
};

QTEST_GUILESS_MAIN(TestChannelOutliers)
#include "tst_channeloutliers.moc"
