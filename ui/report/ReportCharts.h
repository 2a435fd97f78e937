#pragma once
// Draws the charts of a report (core/report/ReportFolder.h planReportCharts) with the plot widgets of
// the live views: LayerErrorPlot (per-layer error of a run, runs side by side), ParetoPlot (bits per
// weight against perplexity or KLD with the front) and HistogramPlot (weights with outlier bins). The
// report and the Runs/Layer tabs therefore draw the same thing; the report only adds a title, fonts
// sized for print, and a fixed size.
//
// Size and resolution (docs/reports.md): a chart is laid out at options.width × options.height CSS
// pixels (1/96 inch), fonts given in those pixels. PNG: rendered at dpi/96 times that, i.e.
// round(width·dpi/96) × round(height·dpi/96) pixels, lines and text scaled with it, dpi stored in the
// file. SVG: width × height user units (px) with viewBox 0 0 width height. PDF: one page of
// width·0.75 × height·0.75 points (the same physical size), vector.
//
// QCustomPlot is a widget: renderReportChart() must run on the GUI thread. It only paints into memory;
// encodeReportChart() (PNG compression) and writing the files may run on any thread.

#include <QByteArray>
#include <QImage>

#include <vector>

#include "report/ReportFolder.h"

class QCustomPlot;

namespace qs::ui {

struct RenderedChart
{
    core::ReportChart chart;
    QImage png; // null unless options.png
    QByteArray svg; // empty unless options.svg
    QByteArray pdf; // empty unless options.pdf
};

// GUI thread only (asserts). Throws core::Error for a chart that refers to a run or histogram the input
// does not have.
RenderedChart renderReportChart(const core::ReportInput &input, const core::ReportChart &chart,
    const core::ReportOptions &options);

// charts/<stem>.png|svg|pdf with the bytes of each format rendered. Any thread.
std::vector<core::ReportFile> encodeReportChart(const RenderedChart &chart, int dpi);

// The three renderings of a laid-out plot (exposed for the tests and for saving a live plot).
QImage renderPlotImage(QCustomPlot *plot, int width, int height, int dpi);
QByteArray renderPlotSvg(QCustomPlot *plot, int width, int height, const QString &title);
QByteArray renderPlotPdf(QCustomPlot *plot, int width, int height, const QString &title);

} // namespace qs::ui
