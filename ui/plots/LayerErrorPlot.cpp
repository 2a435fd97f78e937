#include "LayerErrorPlot.h"

#include <QVBoxLayout>

#include <cmath>
#include <map>
#include <qcustomplot.h>

#include "RunsModel.h"

namespace qs::ui {

LayerErrorPlot::LayerErrorPlot(QWidget *parent) : QWidget(parent), m_plot(new QCustomPlot(this))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    m_plot->setObjectName(QStringLiteral("layerErrorPlot"));
    m_plot->setMinimumHeight(220);
    m_plot->yAxis->setLabel(tr("relative output error"));
    m_plot->yAxis2->setLabel(tr("cumulative block error"));
    m_plot->yAxis2->setVisible(true);
    m_plot->xAxis->setLabel(tr("layer (model order)"));
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(font());
    m_plot->legend->setBrush(QColor(255, 255, 255, 200));
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);
    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    m_plot->axisRect()->setRangeDrag(Qt::Horizontal);
    m_plot->axisRect()->setRangeZoom(Qt::Horizontal);
}

void LayerErrorPlot::clear()
{
    m_plot->clearPlottables();
    m_bars = 0;
    m_plot->replot();
}

void LayerErrorPlot::setSeries(const std::vector<std::string> &layerOrder, const std::vector<Series> &series)
{
    m_plot->clearPlottables();
    m_bars = 0;
    std::map<std::string, int> position;
    for (const std::string &name : layerOrder)
        position.emplace(name, int(position.size()));
    for (const Series &s : series)
        for (const core::LayerResult &l : s.layers)
            position.emplace(l.name, int(position.size()));
    std::map<std::string, int> lastLayerOfBlock; // x of a block's last layer, for the cumulative line
    for (const auto &[name, x] : position) {
        const auto dot = name.find(".layers.");
        if (dot == std::string::npos)
            continue;
        const std::string block = name.substr(dot + 8, name.find('.', dot + 8) - dot - 8);
        lastLayerOfBlock[block] = std::max(lastLayerOfBlock[block], x);
    }

    const int n = int(series.size());
    const double width = 0.8 / std::max(1, n);
    double maxError = 0, maxCumulative = 0;
    for (int si = 0; si < n; ++si) {
        const Series &s = series[size_t(si)];
        // One bar set per method so the legend explains the colours; shifted per series when comparing.
        std::map<std::string, QCPBars *> byMethod;
        for (const core::LayerResult &l : s.layers) {
            QCPBars *&bars = byMethod[l.method];
            if (!bars) {
                bars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
                bars->setWidth(width);
                const QColor c(methodColorName(l.method));
                bars->setBrush(si == 0 ? c : c.lighter(140));
                bars->setPen(si == 0 ? Qt::NoPen : QPen(c.darker(130)));
                bars->setName(n > 1 ? QStringLiteral("%1: %2").arg(s.name, QString::fromStdString(l.method))
                                    : QString::fromStdString(l.method));
            }
            const double x = position[l.name] + (si - (n - 1) / 2.0) * width;
            bars->addData(x, l.relOutputError);
            maxError = std::max(maxError, l.relOutputError);
            ++m_bars;
        }
        if (!s.blocks.empty()) {
            QCPGraph *line = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis2);
            line->setName(n > 1 ? tr("%1: cumulative").arg(s.name) : tr("cumulative block output error"));
            line->setPen(QPen(si == 0 ? QColor(0x20, 0x20, 0x20) : QColor(0x90, 0x90, 0x90), 2));
            line->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
            for (const auto &[block, err] : s.blocks) {
                if (std::isnan(err))
                    continue;
                const auto it = lastLayerOfBlock.find(std::to_string(block));
                line->addData(it != lastLayerOfBlock.end() ? it->second : block, err);
                maxCumulative = std::max(maxCumulative, err);
            }
        }
    }
    m_plot->xAxis->setRange(-0.6, std::max<double>(1.0, double(position.size()) - 0.4));
    m_plot->yAxis->setRange(0, maxError * 1.15 + 1e-12);
    m_plot->yAxis2->setRange(0, maxCumulative * 1.15 + 1e-12);
    m_plot->replot();
}

} // namespace qs::ui
