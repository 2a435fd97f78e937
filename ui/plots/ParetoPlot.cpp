#include "ParetoPlot.h"

#include <QVBoxLayout>

#include <cmath>
#include <qcustomplot.h>

#include "eval/Pareto.h"

namespace qs::ui {

ParetoPlot::ParetoPlot(QWidget *parent) : QWidget(parent), m_plot(new QCustomPlot(this))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    m_plot->setObjectName(QStringLiteral("paretoPlot"));
    m_plot->setMinimumHeight(200);
    m_plot->xAxis->setLabel(tr("bits per weight (incl. scales and zeros)"));
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(font());
    m_plot->legend->setBrush(QColor(255, 255, 255, 200));
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);
}

void ParetoPlot::setPoints(const std::vector<Point> &points, const QString &lossLabel, double baseline)
{
    m_plot->clearPlottables();
    m_plot->clearItems();
    m_plot->yAxis->setLabel(lossLabel);
    std::vector<core::ParetoPoint> pp;
    for (const Point &p : points)
        pp.push_back({p.bitsPerWeight, p.loss});
    m_front = core::paretoFront(pp);

    QCPGraph *all = m_plot->addGraph();
    all->setName(tr("runs"));
    all->setLineStyle(QCPGraph::lsNone);
    all->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QColor(0x4a, 0x7f, 0xb5), 7));
    QCPGraph *front = m_plot->addGraph();
    front->setName(tr("Pareto front"));
    front->setLineStyle(QCPGraph::lsStepLeft);
    front->setPen(QPen(QColor(0xd9, 0x3b, 0x3b), 2));
    front->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, QColor(0xd9, 0x3b, 0x3b), 8));
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (const Point &p : points) {
        if (std::isnan(p.loss) || std::isnan(p.bitsPerWeight))
            continue;
        all->addData(p.bitsPerWeight, p.loss);
        xmin = std::min(xmin, p.bitsPerWeight);
        xmax = std::max(xmax, p.bitsPerWeight);
        ymin = std::min(ymin, p.loss);
        ymax = std::max(ymax, p.loss);
        auto *label = new QCPItemText(m_plot);
        label->position->setCoords(p.bitsPerWeight, p.loss);
        label->setPositionAlignment(Qt::AlignLeft | Qt::AlignBottom);
        label->setText(QStringLiteral(" ") + p.label);
        label->setFont(font());
    }
    for (int i : m_front)
        front->addData(points[size_t(i)].bitsPerWeight, points[size_t(i)].loss);
    if (!std::isnan(baseline)) {
        auto *line = new QCPItemStraightLine(m_plot);
        line->point1->setCoords(0, baseline);
        line->point2->setCoords(1, baseline);
        line->setPen(QPen(Qt::gray, 1, Qt::DashLine));
        ymin = std::min(ymin, baseline);
        ymax = std::max(ymax, baseline);
    }
    if (xmin <= xmax) {
        const double dx = std::max(0.5, (xmax - xmin) * 0.15), dy = std::max(1e-6, (ymax - ymin) * 0.15);
        m_plot->xAxis->setRange(xmin - dx, xmax + dx);
        m_plot->yAxis->setRange(ymin - dy, ymax + dy);
    }
    m_plot->replot();
}

} // namespace qs::ui
