#include "MethodBarPlot.h"

#include <QVBoxLayout>

#include <algorithm>
#include <qcustomplot.h>

namespace qs::ui {

MethodBarPlot::MethodBarPlot(QWidget *parent) : QWidget(parent), m_plot(new QCustomPlot(this))
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    m_plot->setObjectName(QStringLiteral("methodBarPlot"));
    m_plot->setMinimumHeight(200);
    m_plot->xAxis->setLabel(tr("configuration"));
    m_plot->xAxis->grid()->setVisible(false);
    m_plot->xAxis->setTickLength(0, 3);
    clear();
}

void MethodBarPlot::clear()
{
    m_plot->clearPlottables();
    m_plot->clearItems();
    m_bars = 0;
    m_plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTickerText));
    m_plot->xAxis->setRange(0.4, 1.6);
    m_plot->yAxis->setRange(0, 1);
    m_plot->replot();
}

void MethodBarPlot::setBars(const std::vector<Bar> &bars, const QString &valueLabel, int best)
{
    m_plot->clearPlottables();
    m_plot->clearItems();
    m_bars = 0;
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    double maxValue = 0;
    for (const Bar &b : bars)
        if (b.valid)
            maxValue = std::max(maxValue, b.value);
    for (size_t i = 0; i < bars.size(); ++i) {
        const Bar &b = bars[i];
        const double x = double(i + 1);
        // Method on the first line, the rest of the label below, so four or five bars fit side by side.
        // Method, bits, and the rest on three lines ("RTN / 8-bit / per channel").
        QString tick = b.label;
        for (int k = 0, from = 0; k < 2; ++k) {
            const qsizetype space = tick.indexOf(QLatin1Char(' '), from);
            if (space < 0)
                break;
            tick[space] = QLatin1Char('\n');
            from = int(space) + 1;
        }
        ticker->addTick(x, tick);
        if (!b.valid) {
            auto *failed = new QCPItemText(m_plot);
            failed->position->setCoords(x, maxValue * 0.05);
            failed->setPositionAlignment(Qt::AlignHCenter | Qt::AlignBottom);
            failed->setText(tr("failed"));
            failed->setColor(QColor(0xb0, 0x20, 0x20));
            continue;
        }
        auto *bar = new QCPBars(m_plot->xAxis, m_plot->yAxis);
        bar->setWidth(0.6);
        bar->setBrush(b.color);
        bar->setPen(int(i) == best ? QPen(QColor(0x20, 0x20, 0x20), 2.5) : QPen(b.color.darker(130)));
        bar->addData(x, b.value);
        bar->setName(b.label);
        auto *text = new QCPItemText(m_plot);
        text->position->setCoords(x, b.value);
        text->setPositionAlignment(Qt::AlignHCenter | Qt::AlignBottom);
        text->setPadding(QMargins(0, 0, 0, 3));
        text->setText(QString::number(b.value, 'g', 3) + (int(i) == best ? tr("\n(best)") : QString()));
        QFont f = font();
        f.setBold(int(i) == best);
        text->setFont(f);
        ++m_bars;
    }
    m_plot->xAxis->setTicker(ticker);
    m_plot->xAxis->setRange(0.4, double(bars.size()) + 0.6);
    m_plot->yAxis->setLabel(valueLabel);
    // Head room for the value labels above the bars.
    m_plot->yAxis->setRange(0, maxValue > 0 ? maxValue * 1.3 : 1.0);
    m_plot->replot();
}

} // namespace qs::ui
