#include "OverlayHistogramPlot.h"

#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <qcustomplot.h>

namespace qs::ui {

namespace {
constexpr double kFloor = 0.5; // empty bins sit on the bottom of the log axis
}

OverlayHistogramPlot::OverlayHistogramPlot(QWidget *parent) : QWidget(parent), m_plot(new QCustomPlot(this))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    m_plot->setObjectName(QStringLiteral("overlayHistogramPlot"));
    m_plot->setMinimumHeight(200);
    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    QSharedPointer<QCPAxisTickerLog> logTicker(new QCPAxisTickerLog);
    m_plot->yAxis->setTicker(logTicker);
    m_plot->yAxis->setNumberFormat(QStringLiteral("eb"));
    m_plot->yAxis->setNumberPrecision(0);
    m_plot->yAxis->setLabel(tr("weights per bin"));
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(font());
    m_plot->legend->setBrush(QColor(255, 255, 255, 215));
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);
    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    m_plot->axisRect()->setRangeDrag(Qt::Horizontal);
    m_plot->axisRect()->setRangeZoom(Qt::Horizontal);
    clear();
}

void OverlayHistogramPlot::clear()
{
    m_plot->clearGraphs();
    m_series = 0;
    m_plot->legend->setVisible(false);
    m_plot->xAxis->setRange(-1, 1);
    m_plot->yAxis->setRange(kFloor, 10);
    m_plot->replot();
}

void OverlayHistogramPlot::setSeries(const std::vector<Series> &series, const QString &xLabel)
{
    m_plot->clearGraphs();
    m_series = 0;
    double lo = 0, hi = 0, maxCount = 1;
    bool any = false;
    // Trim bins that are empty in every series so the occupied range fills the plot.
    size_t first = SIZE_MAX, last = 0;
    for (const Series &s : series)
        for (size_t i = 0; i < s.histogram.counts.size(); ++i)
            if (s.histogram.counts[i] > 0) {
                first = std::min(first, i);
                last = std::max(last, i + 1);
            }
    for (const Series &s : series) {
        const core::Histogram &h = s.histogram;
        const size_t n = h.counts.size();
        if (n == 0 || !(h.hi > h.lo))
            continue;
        const double w = (h.hi - h.lo) / double(n);
        const size_t a = first == SIZE_MAX ? 0 : std::min(first, n), b = first == SIZE_MAX ? n : std::min(last, n);
        QVector<double> x, y;
        x.reserve(int(b - a) + 2);
        y.reserve(int(b - a) + 2);
        for (size_t i = a; i < b; ++i) {
            x.push_back(h.lo + w * double(i));
            y.push_back(std::max(kFloor, double(h.counts[i])));
            maxCount = std::max(maxCount, double(h.counts[i]));
        }
        // Close the last step at the bin's right edge.
        x.push_back(h.lo + w * double(b));
        y.push_back(y.isEmpty() ? kFloor : y.back());
        QCPGraph *g = m_plot->addGraph();
        g->setName(s.name);
        g->setLineStyle(QCPGraph::lsStepLeft);
        QPen pen(s.color, s.dashed ? 1.5 : 2.0);
        if (s.dashed)
            pen.setStyle(Qt::DashLine);
        g->setPen(pen);
        g->setData(x, y, true);
        const double xlo = x.front(), xhi = x.back();
        lo = any ? std::min(lo, xlo) : xlo;
        hi = any ? std::max(hi, xhi) : xhi;
        any = true;
        ++m_series;
    }
    m_plot->legend->setVisible(m_series > 0);
    m_plot->xAxis->setLabel(xLabel);
    if (any) {
        const double pad = (hi - lo) * 0.03 + 1e-12;
        m_plot->xAxis->setRange(lo - pad, hi + pad);
    }
    // Head room (in log space) above the highest bin for the legend in the top corner.
    m_plot->yAxis->setRange(kFloor, kFloor * std::pow(10.0, std::log10(maxCount * 3.0 / kFloor) / 0.6));
    m_plot->replot();
}

} // namespace qs::ui
