#pragma once
// Per-layer relative output error ‖WX − QX‖/‖WX‖ as bars in model order, coloured by method, with the
// cumulative output error of the quantized block stack as a line; filled in live while a run proceeds.
// With two runs, the bars stand side by side for comparison.

#include <QWidget>

#include <vector>

#include "quant/Pipeline.h"

class QCustomPlot;

namespace qs::ui {

class LayerErrorPlot : public QWidget
{
    Q_OBJECT
public:
    explicit LayerErrorPlot(QWidget *parent = nullptr);

    struct Series
    {
        QString name;
        std::vector<core::LayerResult> layers;
        std::vector<std::pair<int, double>> blocks; // (block, cumulative error)
    };
    // layerOrder: canonical names in model order (x positions); layers not in it are appended.
    void setSeries(const std::vector<std::string> &layerOrder, const std::vector<Series> &series);
    void clear();
    QCustomPlot *plot() const { return m_plot; }
    int barCount() const { return m_bars; }

private:
    QCustomPlot *m_plot;
    int m_bars = 0;
};

} // namespace qs::ui
