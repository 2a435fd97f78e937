#pragma once
// Several histograms on shared bins drawn over each other as step lines, one colour per series with a
// legend, counts on a log axis (a quantization error histogram spans orders of magnitude). Used by the
// "Compare methods" view for the weight error (Ŵ − W) and the quantized weights of each configuration.

#include <QColor>
#include <QWidget>

#include <vector>

#include "stats/WeightStats.h"

class QCustomPlot;

namespace qs::ui {

class OverlayHistogramPlot : public QWidget
{
    Q_OBJECT
public:
    explicit OverlayHistogramPlot(QWidget *parent = nullptr);

    struct Series
    {
        QString name;
        QColor color;
        core::Histogram histogram; // lo, hi, counts
        bool dashed = false; // e.g. the original weights as a reference
    };
    void setSeries(const std::vector<Series> &series, const QString &xLabel);
    void clear();
    int seriesCount() const { return m_series; }
    QCustomPlot *plot() const { return m_plot; }

private:
    QCustomPlot *m_plot;
    int m_series = 0;
};

} // namespace qs::ui
