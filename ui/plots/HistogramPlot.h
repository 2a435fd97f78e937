#pragma once
// The weight (later: activation) histogram of one tensor: log-scale counts, bins beyond the ±kσ outlier
// threshold drawn in a distinct colour, threshold lines that can be dragged (emitting sigmaDragged while
// dragging and sigmaEdited on release), and a tooltip with bin range and count under the mouse.

#include <QWidget>

#include "stats/WeightStats.h"

class QCustomPlot;
class QCPBars;
class QCPItemStraightLine;
class QMouseEvent;

namespace qs::ui {

class HistogramPlot : public QWidget
{
    Q_OBJECT
public:
    explicit HistogramPlot(QWidget *parent = nullptr);

    // stats' histograms are drawn; sigma is the threshold to show (may differ from stats.outlierSigma
    // while the user drags, until recomputed statistics arrive).
    void setStats(const core::WeightStats &stats, double sigma);
    void clear();
    void setSymlog(bool symlog);
    bool symlog() const { return m_symlog; }
    void setSigma(double sigma);
    // A histogram given by bin edges (counts.size() + 1 values, ascending) with fixed outlier thresholds
    // (bins reaching below low or above high are outlier bins); no dragging. For activations.
    void setBins(const std::vector<double> &edges, const std::vector<uint64_t> &counts, double low, double high,
                 const QString &xLabel, const QString &seriesName);

    QCustomPlot *plot() const { return m_plot; }

    // Bin i of the shown histogram: value range [lo, hi) in data units, and its count.
    struct BinInfo { double lo; double hi; uint64_t count; bool outlier; };
    std::vector<BinInfo> bins() const;

Q_SIGNALS:
    void sigmaDragged(double sigma);
    void sigmaEdited(double sigma);

private:
    void rebuild();
    void rebuildFixed();
    void updateThresholdLines();
    double toAxis(double value) const;   // data value -> x coordinate of the shown histogram
    double fromAxis(double x) const;     // inverse
    void onMousePress(QMouseEvent *event);
    void onMouseMove(QMouseEvent *event);
    void onMouseRelease(QMouseEvent *event);

    QCustomPlot *m_plot;
    QCPBars *m_normalBars;
    QCPBars *m_outlierBars;
    QCPItemStraightLine *m_lowLine;
    QCPItemStraightLine *m_highLine;
    bool m_hasStats = false;
    bool m_fixed = false; // setBins(): fixed edges and thresholds
    std::vector<double> m_edges;
    std::vector<uint64_t> m_counts;
    double m_low = 0.0;
    double m_high = 0.0;
    QString m_xLabel;
    core::WeightStats m_stats; // histograms and moments only are used
    double m_sigma = 6.0;
    bool m_symlog = false;
    bool m_dragging = false;
};

} // namespace qs::ui
