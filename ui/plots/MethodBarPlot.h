#pragma once
// One bar per configuration (e.g. the relative output error of each method tried on a layer), labelled on
// the x axis, each in its configuration's colour, the best one outlined and its value printed on every bar.

#include <QColor>
#include <QWidget>

#include <vector>

class QCustomPlot;

namespace qs::ui {

class MethodBarPlot : public QWidget
{
    Q_OBJECT
public:
    explicit MethodBarPlot(QWidget *parent = nullptr);

    struct Bar
    {
        QString label;
        QColor color;
        double value = 0.0;
        bool valid = true; // false: no value (the configuration failed); drawn as an empty slot
    };
    // best: index of the bar to outline (−1: none).
    void setBars(const std::vector<Bar> &bars, const QString &valueLabel, int best);
    void clear();
    int barCount() const { return m_bars; }
    QCustomPlot *plot() const { return m_plot; }

private:
    QCustomPlot *m_plot;
    int m_bars = 0;
};

} // namespace qs::ui
