#include "ChannelPlot.h"

#include <QVBoxLayout>

#include <qcustomplot.h>

#include "stats/ChannelOutliers.h"

namespace qs::ui {

ChannelPlot::ChannelPlot(QWidget *parent)
    : QWidget(parent), m_plot(new QCustomPlot(this)), m_values(m_plot->addGraph()), m_marked(m_plot->addGraph()),
      m_threshold(new QCPItemStraightLine(m_plot))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    m_plot->setObjectName(QStringLiteral("channelPlot"));
    m_plot->setMinimumHeight(180);

    m_values->setName(tr("absmax"));
    m_values->setLineStyle(QCPGraph::lsImpulse);
    m_values->setPen(QPen(QColor(0x4a, 0x7f, 0xb5), 1));
    m_marked->setName(tr("outlier channels"));
    m_marked->setLineStyle(QCPGraph::lsNone);
    m_marked->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, QColor(0xd9, 0x3b, 0x3b), 6));
    m_threshold->setPen(QPen(QColor(0xd9, 0x3b, 0x3b), 1, Qt::DashLine));
    m_plot->yAxis->setLabel(tr("|w| max"));
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(font());
    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    m_plot->axisRect()->setRangeDrag(Qt::Horizontal);
    m_plot->axisRect()->setRangeZoom(Qt::Horizontal);
    clear();
}

void ChannelPlot::clear()
{
    m_values->data()->clear();
    m_marked->data()->clear();
    m_threshold->setVisible(false);
    m_outliers.clear();
    m_plot->replot();
}

void ChannelPlot::setChannels(const QString &title, const std::vector<float> &absMax, double outlierFactor,
                              const QString &valueLabel)
{
    m_plot->yAxis->setLabel(valueLabel);
    const core::ChannelOutliers outliers = core::findOutlierChannels(absMax, outlierFactor);
    m_outliers = outliers.channels;
    QVector<double> keys(qsizetype(absMax.size())), values(qsizetype(absMax.size()));
    double maxValue = 0;
    for (size_t i = 0; i < absMax.size(); ++i) {
        keys[qsizetype(i)] = double(i);
        values[qsizetype(i)] = double(absMax[i]);
        maxValue = std::max(maxValue, double(absMax[i]));
    }
    m_values->setData(keys, values, true);
    QVector<double> ok, ov;
    for (int c : m_outliers) {
        ok.push_back(double(c));
        ov.push_back(double(absMax[size_t(c)]));
    }
    m_marked->setData(ok, ov, true);
    m_marked->setName(tr("outlier channels (> %1\u00d7 median): %2").arg(outlierFactor).arg(m_outliers.size()));
    m_threshold->setVisible(outliers.threshold > 0);
    m_threshold->point1->setCoords(0, outliers.threshold);
    m_threshold->point2->setCoords(1, outliers.threshold);
    m_plot->xAxis->setLabel(title);
    m_plot->xAxis->setRange(-0.5, std::max<double>(1.0, double(absMax.size()) - 0.5));
    // The threshold line is shown when it is near the data; a far one would flatten every channel.
    const double top = outliers.threshold < 2.0 * maxValue ? std::max(maxValue, outliers.threshold) : maxValue;
    m_plot->yAxis->setRange(0, top * 1.1 + 1e-12);
    m_plot->replot();
}

} // namespace qs::ui
