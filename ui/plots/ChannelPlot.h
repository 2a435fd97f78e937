#pragma once
// Per-channel absolute maximum of one tensor (input channels = columns, or output channels = rows), with
// outlier channels (absmax > factor × median) marked and the threshold drawn.

#include <QWidget>

#include <vector>

class QCustomPlot;
class QCPGraph;
class QCPItemStraightLine;

namespace qs::ui {

class ChannelPlot : public QWidget
{
    Q_OBJECT
public:
    explicit ChannelPlot(QWidget *parent = nullptr);

    // title: e.g. "input channels"; values: one absmax per channel.
    void setChannels(const QString &title, const std::vector<float> &absMax, double outlierFactor,
                     const QString &valueLabel = QStringLiteral("|w| max"));
    void clear();
    const std::vector<int> &outlierChannels() const { return m_outliers; }
    QCustomPlot *plot() const { return m_plot; }

private:
    QCustomPlot *m_plot;
    QCPGraph *m_values;
    QCPGraph *m_marked;
    QCPItemStraightLine *m_threshold;
    std::vector<int> m_outliers;
};

} // namespace qs::ui
