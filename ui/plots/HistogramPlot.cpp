#include "HistogramPlot.h"

#include <QToolTip>
#include <QVBoxLayout>

#include <cmath>
#include <qcustomplot.h>

namespace qs::ui {

namespace {
const QColor kNormal(0x4a, 0x7f, 0xb5);
const QColor kOutlier(0xd9, 0x3b, 0x3b);
const QColor kThreshold(0xd9, 0x3b, 0x3b);
} // namespace

HistogramPlot::HistogramPlot(QWidget *parent)
    : QWidget(parent), m_plot(new QCustomPlot(this)), m_normalBars(new QCPBars(m_plot->xAxis, m_plot->yAxis)),
      m_outlierBars(new QCPBars(m_plot->xAxis, m_plot->yAxis)), m_lowLine(new QCPItemStraightLine(m_plot)),
      m_highLine(new QCPItemStraightLine(m_plot))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    m_plot->setObjectName(QStringLiteral("histogramPlot"));
    m_plot->setMinimumHeight(220);

    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    QSharedPointer<QCPAxisTickerLog> logTicker(new QCPAxisTickerLog);
    m_plot->yAxis->setTicker(logTicker);
    m_plot->yAxis->setNumberFormat(QStringLiteral("eb"));
    m_plot->yAxis->setNumberPrecision(0);
    m_plot->yAxis->setLabel(tr("count"));
    m_plot->xAxis->setLabel(tr("weight value"));

    for (QCPBars *bars : {m_normalBars, m_outlierBars}) {
        bars->setWidthType(QCPBars::wtPlotCoords);
        bars->setBaseValue(0.5); // log axis: bars start below a count of 1
        bars->setPen(Qt::NoPen);
    }
    m_normalBars->setBrush(kNormal);
    m_normalBars->setName(tr("weights"));
    m_outlierBars->setBrush(kOutlier);
    m_outlierBars->setName(tr("outlier bins"));
    for (QCPItemStraightLine *line : {m_lowLine, m_highLine}) {
        QPen pen(kThreshold, 1.5, Qt::DashLine);
        line->setPen(pen);
        line->setSelectable(false);
    }
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(font());
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    m_plot->setMouseTracking(true);

    connect(m_plot, &QCustomPlot::mousePress, this, &HistogramPlot::onMousePress);
    connect(m_plot, &QCustomPlot::mouseMove, this, &HistogramPlot::onMouseMove);
    connect(m_plot, &QCustomPlot::mouseRelease, this, &HistogramPlot::onMouseRelease);
    clear();
}

void HistogramPlot::clear()
{
    m_hasStats = false;
    m_normalBars->data()->clear();
    m_outlierBars->data()->clear();
    m_lowLine->setVisible(false);
    m_highLine->setVisible(false);
    m_plot->replot();
}

void HistogramPlot::setBins(const std::vector<double> &edges, const std::vector<uint64_t> &counts, double low,
                            double high, const QString &xLabel, const QString &seriesName)
{
    m_normalBars->setName(seriesName);
    m_fixed = true;
    m_hasStats = edges.size() == counts.size() + 1 && !counts.empty();
    m_edges = edges;
    m_counts = counts;
    m_low = low;
    m_high = high;
    m_xLabel = xLabel;
    if (m_hasStats)
        rebuild();
    else
        clear();
}

void HistogramPlot::setStats(const core::WeightStats &stats, double sigma)
{
    m_fixed = false;
    m_normalBars->setName(tr("weights"));
    m_stats.name = stats.name;
    m_stats.mean = stats.mean;
    m_stats.stddev = stats.stddev;
    m_stats.count = stats.count;
    m_stats.linearHistogram = stats.linearHistogram;
    m_stats.symlogHistogram = stats.symlogHistogram;
    m_sigma = sigma;
    m_hasStats = true;
    rebuild();
}

void HistogramPlot::setSymlog(bool symlog)
{
    if (m_symlog == symlog)
        return;
    m_symlog = symlog;
    if (m_hasStats)
        rebuild();
}

void HistogramPlot::setSigma(double sigma)
{
    m_sigma = sigma;
    if (m_hasStats)
        rebuild();
}

double HistogramPlot::toAxis(double value) const
{
    return m_symlog ? core::symlogForward(value, m_stats.symlogHistogram.scale) : value;
}

double HistogramPlot::fromAxis(double x) const
{
    return m_symlog ? core::symlogInverse(x, m_stats.symlogHistogram.scale) : x;
}

std::vector<HistogramPlot::BinInfo> HistogramPlot::bins() const
{
    std::vector<BinInfo> out;
    if (!m_hasStats)
        return out;
    if (m_fixed) {
        out.reserve(m_counts.size());
        for (size_t i = 0; i < m_counts.size(); ++i)
            out.push_back({m_edges[i], m_edges[i + 1], m_counts[i], m_edges[i] < m_low || m_edges[i + 1] > m_high});
        return out;
    }
    const core::Histogram &h = m_symlog ? m_stats.symlogHistogram : m_stats.linearHistogram;
    const size_t n = h.counts.size();
    if (n == 0)
        return out;
    const double w = (h.hi - h.lo) / double(n);
    const double threshold = m_sigma * m_stats.stddev;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const double a = fromAxis(h.lo + w * double(i));
        const double b = fromAxis(h.lo + w * double(i + 1));
        // A bin is an outlier bin when any part of it lies beyond the threshold.
        const bool outlier = threshold > 0 && (std::abs(a - m_stats.mean) > threshold || std::abs(b - m_stats.mean) > threshold);
        out.push_back({a, b, h.counts[i], outlier});
    }
    return out;
}

void HistogramPlot::rebuild()
{
    if (m_fixed) {
        rebuildFixed();
        return;
    }
    const core::Histogram &h = m_symlog ? m_stats.symlogHistogram : m_stats.linearHistogram;
    const std::vector<BinInfo> info = bins();
    QVector<double> nk, nv, ok, ov;
    const double w = info.empty() ? 1.0 : (h.hi - h.lo) / double(info.size());
    double maxCount = 1;
    for (size_t i = 0; i < info.size(); ++i) {
        if (info[i].count == 0)
            continue;
        const double center = h.lo + w * (double(i) + 0.5);
        maxCount = std::max(maxCount, double(info[i].count));
        (info[i].outlier ? ok : nk).push_back(center);
        (info[i].outlier ? ov : nv).push_back(double(info[i].count));
    }
    m_normalBars->setWidth(w);
    m_outlierBars->setWidth(w);
    m_normalBars->setData(nk, nv, true);
    m_outlierBars->setData(ok, ov, true);
    const double pad = (h.hi - h.lo) * 0.03 + 1e-12;
    m_plot->xAxis->setRange(h.lo - pad, h.hi + pad);
    m_plot->yAxis->setRange(0.5, maxCount * 2.0);
    m_plot->xAxis->setLabel(m_symlog ? tr("weight value (symmetric log: sign(x)\u00b7log(1 + |x|/%1))")
                                           .arg(h.scale, 0, 'g', 3)
                                     : tr("weight value"));
    updateThresholdLines();
}

void HistogramPlot::rebuildFixed()
{
    // Trim empty bins at both ends so a doubling histogram's unused range does not squash the data.
    size_t first = 0, last = m_counts.size();
    while (first < last && m_counts[first] == 0)
        ++first;
    while (last > first && m_counts[last - 1] == 0)
        --last;
    QVector<double> nk, nv, ok, ov;
    double maxCount = 1;
    const std::vector<BinInfo> info = bins();
    for (size_t i = first; i < last; ++i) {
        if (info[i].count == 0)
            continue;
        maxCount = std::max(maxCount, double(info[i].count));
        (info[i].outlier ? ok : nk).push_back(0.5 * (info[i].lo + info[i].hi));
        (info[i].outlier ? ov : nv).push_back(double(info[i].count));
    }
    const double w = m_edges.size() > 1 ? m_edges[1] - m_edges[0] : 1.0;
    m_normalBars->setWidth(w);
    m_outlierBars->setWidth(w);
    m_normalBars->setData(nk, nv, true);
    m_outlierBars->setData(ok, ov, true);
    const double lo = first < last ? m_edges[first] : 0.0, hi = first < last ? m_edges[last] : 1.0;
    const double pad = (hi - lo) * 0.03 + 1e-12;
    // Show a threshold that lies just outside the data, but do not squash the data for a far one.
    const double span = hi - lo;
    const double xlo = m_low < lo && lo - m_low < 0.25 * span ? m_low : lo;
    const double xhi = m_high > hi && m_high - hi < 0.25 * span ? m_high : hi;
    m_plot->xAxis->setRange(xlo - pad, xhi + pad);
    m_plot->yAxis->setRange(0.5, maxCount * 2.0);
    m_plot->xAxis->setLabel(m_xLabel);
    m_lowLine->setVisible(m_high > m_low);
    m_highLine->setVisible(m_high > m_low);
    m_lowLine->point1->setCoords(m_low, 1);
    m_lowLine->point2->setCoords(m_low, 10);
    m_highLine->point1->setCoords(m_high, 1);
    m_highLine->point2->setCoords(m_high, 10);
    m_plot->replot();
}

void HistogramPlot::updateThresholdLines()
{
    const bool show = m_hasStats && m_stats.stddev > 0;
    m_lowLine->setVisible(show);
    m_highLine->setVisible(show);
    if (show) {
        const double t = m_sigma * m_stats.stddev;
        const double lo = toAxis(m_stats.mean - t), hi = toAxis(m_stats.mean + t);
        m_lowLine->point1->setCoords(lo, 1);
        m_lowLine->point2->setCoords(lo, 10);
        m_highLine->point1->setCoords(hi, 1);
        m_highLine->point2->setCoords(hi, 10);
    }
    m_plot->replot();
}

void HistogramPlot::onMousePress(QMouseEvent *event)
{
    if (!m_hasStats || m_fixed || m_stats.stddev <= 0 || event->button() != Qt::LeftButton)
        return;
    const double x = event->position().x();
    const double t = m_sigma * m_stats.stddev;
    const double lo = m_plot->xAxis->coordToPixel(toAxis(m_stats.mean - t));
    const double hi = m_plot->xAxis->coordToPixel(toAxis(m_stats.mean + t));
    if (std::abs(x - lo) < 6 || std::abs(x - hi) < 6) {
        m_dragging = true;
        m_plot->setCursor(Qt::SizeHorCursor);
    }
}

void HistogramPlot::onMouseMove(QMouseEvent *event)
{
    if (!m_hasStats)
        return;
    const double x = m_plot->xAxis->pixelToCoord(event->position().x());
    if (m_dragging) {
        const double value = fromAxis(x);
        const double sigma = std::clamp(std::abs(value - m_stats.mean) / m_stats.stddev, 0.5, 100.0);
        m_sigma = sigma;
        rebuild();
        Q_EMIT sigmaDragged(sigma);
        return;
    }
    const std::vector<BinInfo> all = bins();
    size_t i = all.size();
    if (m_fixed) {
        for (size_t k = 0; k < all.size(); ++k)
            if (x >= all[k].lo && x < all[k].hi)
                i = k;
    } else {
        const core::Histogram &h = m_symlog ? m_stats.symlogHistogram : m_stats.linearHistogram;
        if (!h.counts.empty() && x >= h.lo && x <= h.hi)
            i = std::min(h.counts.size() - 1, size_t((x - h.lo) / (h.hi - h.lo) * double(h.counts.size())));
    }
    if (i >= all.size()) {
        QToolTip::hideText();
        return;
    }
    const BinInfo b = all[i];
    QToolTip::showText(event->globalPosition().toPoint(),
                       tr("[%1, %2)\n%L3 values%4")
                           .arg(b.lo, 0, 'g', 5)
                           .arg(b.hi, 0, 'g', 5)
                           .arg(qulonglong(b.count))
                           .arg(b.outlier ? (m_fixed ? tr("\nbeyond the outlier threshold")
                                                     : tr("\nbeyond %1\u03c3").arg(m_sigma, 0, 'f', 1))
                                          : QString()),
                       m_plot);
}

void HistogramPlot::onMouseRelease(QMouseEvent *)
{
    if (!m_dragging)
        return;
    m_dragging = false;
    m_plot->unsetCursor();
    Q_EMIT sigmaEdited(m_sigma);
}

} // namespace qs::ui
