#include "TrainingLossPlot.h"

#include <QLabel>
#include <QVBoxLayout>

#include <cmath>
#include <map>
#include <qcustomplot.h>

namespace qs::ui {

TrainingLossPlot::TrainingLossPlot(QWidget *parent)
    : QWidget(parent), m_plot(new QCustomPlot(this)), m_caption(new QLabel(this))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot, 1);
    layout->addWidget(m_caption);
    m_caption->setWordWrap(true);
    m_caption->setObjectName(QStringLiteral("trainingLossCaption"));
    m_plot->setObjectName(QStringLiteral("trainingLossPlot"));
    m_plot->setMinimumHeight(180);
    m_plot->xAxis->setLabel(tr("optimiser step"));
    m_plot->yAxis->setLabel(tr("Block-AP MSE"));
    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_plot->yAxis2->setLabel(tr("E2E-QP cross-entropy (nats)"));
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(font());
    m_plot->legend->setBrush(QColor(255, 255, 255, 200));
    // The legend sits below the axes in one row so it never covers a curve.
    auto *legendRow = new QCPLayoutGrid;
    m_plot->plotLayout()->addElement(1, 0, legendRow);
    legendRow->setMargins(QMargins(5, 0, 5, 5));
    legendRow->addElement(0, 0, m_plot->legend);
    m_plot->legend->setFillOrder(QCPLegend::foColumnsFirst);
    m_plot->plotLayout()->setRowStretchFactor(1, 0.001);
    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
}

void TrainingLossPlot::clear()
{
    m_plot->clearGraphs();
    m_curves = 0;
    m_caption->clear();
    m_plot->replot();
}

void TrainingLossPlot::setEvents(const std::vector<core::TrainingLossEvent> &events)
{
    m_plot->clearGraphs();
    m_curves = 0;
    // Block-AP: block → (step, loss); E2E-QP: (step, loss). Initial/Final go to the caption.
    std::map<int, QVector<QCPGraphData>> blocks;
    QVector<QCPGraphData> e2e;
    std::map<int, std::pair<double, double>> blockBeforeAfter; // block → (initial, final), NaN when absent
    std::pair<double, double> e2eBeforeAfter{NAN, NAN};
    for (const core::TrainingLossEvent &e : events) {
        const bool isE2e = e.phase == "e2e_qp";
        if (e.kind == core::TrainingLossKind::Step) {
            if (!std::isfinite(e.loss))
                continue;
            if (isE2e)
                e2e.push_back({double(e.step), e.loss});
            else
                blocks[e.block].push_back({double(e.step), std::max(e.loss, 1e-12)});
            continue;
        }
        std::pair<double, double> &slot =
            isE2e ? e2eBeforeAfter : blockBeforeAfter.try_emplace(e.block, NAN, NAN).first->second;
        (e.kind == core::TrainingLossKind::Initial ? slot.first : slot.second) = e.loss;
    }

    const int nBlocks = int(blocks.size());
    int index = 0;
    for (auto &[block, data] : blocks) {
        QCPGraph *g = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
        // Early blocks blue, late blocks orange, so the order of the curves reads at a glance.
        const double t = nBlocks > 1 ? double(index) / (nBlocks - 1) : 0.0;
        g->setPen(QPen(QColor::fromHsvF(0.6 - 0.52 * t, 0.75, 0.8), 1.5));
        g->data()->set(data, true);
        g->setName(tr("block %1").arg(block));
        // A legend entry per block only while it stays readable.
        if (nBlocks > 6 && index != 0 && index != nBlocks - 1)
            g->removeFromLegend();
        ++index;
        ++m_curves;
    }
    m_plot->yAxis2->setVisible(!e2e.isEmpty());
    if (!e2e.isEmpty()) {
        QCPGraph *g = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis2);
        g->setPen(QPen(QColor(QStringLiteral("#c0392b")), 2.0));
        g->data()->set(e2e, true);
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, 6)); // a short phase may have one step
        g->setName(tr("E2E-QP (right axis)"));
        ++m_curves;
    }
    m_plot->rescaleAxes();
    m_plot->yAxis->setVisible(nBlocks > 0);

    QStringList parts;
    int improved = 0, measured = 0;
    for (const auto &[block, ba] : blockBeforeAfter) {
        if (std::isfinite(ba.first) && std::isfinite(ba.second)) {
            ++measured;
            improved += ba.second < ba.first ? 1 : 0;
        }
    }
    if (measured > 0)
        parts << tr("Block-AP: loss lowered in %1 of %2 blocks").arg(improved).arg(measured);
    if (std::isfinite(e2eBeforeAfter.first) && std::isfinite(e2eBeforeAfter.second))
        parts << tr("E2E-QP: %1 → %2").arg(e2eBeforeAfter.first, 0, 'g', 4).arg(e2eBeforeAfter.second, 0, 'g', 4);
    m_caption->setText(parts.join(QStringLiteral("; ")));
    m_plot->replot();
}

QString TrainingLossPlot::caption() const { return m_caption->text(); }

} // namespace qs::ui
