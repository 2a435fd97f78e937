#include "ReportCharts.h"

#include <QApplication>
#include <QBuffer>
#include <QImageWriter>
#include <QPageLayout>
#include <QPageSize>
#include <QPdfWriter>
#include <QSvgGenerator>
#include <QThread>

#include <cmath>
#include <memory>
#include <qcustomplot.h>

#include "common/Error.h"
#include "plots/HistogramPlot.h"
#include "plots/LayerErrorPlot.h"
#include "plots/ParetoPlot.h"

namespace qs::ui {

namespace {

// Font sizes in CSS pixels of the chart layout (scaled with the PNG's dpi; the same physical size in
// SVG and PDF). Pixel sizes rather than points: a point size is resolved against each paint device's
// own DPI (96 for an image, 1200 for the PDF writer), which would make the formats differ.
constexpr int kTitlePx = 16;
constexpr int kLabelPx = 14;
constexpr int kTickPx = 12;
constexpr int kLegendPx = 12;

QFont reportFont(int pixels, bool bold = false)
{
    QFont f = QApplication::font();
    f.setPixelSize(pixels);
    f.setBold(bold);
    return f;
}

// Gives a plot laid out by one of the live-view widgets the report's title and fonts.
void applyReportStyle(QCustomPlot *plot, const QString &title)
{
    for (QCPAxisRect *rect : plot->axisRects())
        for (QCPAxis *axis : rect->axes()) {
            axis->setLabelFont(reportFont(kLabelPx));
            axis->setSelectedLabelFont(reportFont(kLabelPx, true));
            axis->setTickLabelFont(reportFont(kTickPx));
            axis->setSelectedTickLabelFont(reportFont(kTickPx, true));
        }
    plot->legend->setFont(reportFont(kLegendPx));
    plot->legend->setSelectedFont(reportFont(kLegendPx));
    for (int i = 0; i < plot->itemCount(); ++i)
        if (auto *text = qobject_cast<QCPItemText *>(plot->item(i))) {
            text->setFont(reportFont(kLegendPx));
            // Point labels in the right half end at their point, so none runs off the plot's right edge.
            if (text->position->coords().x() > plot->xAxis->range().center()) {
                text->setPositionAlignment(Qt::AlignRight | Qt::AlignBottom);
                text->setText(text->text().trimmed() + QLatin1Char(' '));
            }
        }
    plot->plotLayout()->insertRow(0);
    auto *titleElement = new QCPTextElement(plot, title, reportFont(kTitlePx, true));
    plot->plotLayout()->addElement(0, 0, titleElement);
    // The live views float the legend inside the plot, where it can hide bars or points; a report puts
    // it in a row of its own under the plot.
    if (plot->legend->visible() && plot->axisRect()->insetLayout()->take(plot->legend)) {
        plot->axisRect()->insetLayout()->simplify();
        const int row = plot->plotLayout()->rowCount();
        plot->plotLayout()->addElement(row, 0, plot->legend);
        plot->plotLayout()->setRowStretchFactor(row, 0.001);
        plot->legend->setWrap(3); // then rearranged: at most three entries a row
        plot->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst, true);
        plot->legend->setBorderPen(Qt::NoPen);
        plot->legend->setBrush(Qt::NoBrush);
    }
    plot->setBackground(Qt::white);
}

const core::ReportRun &runAt(const core::ReportInput &input, int index)
{
    if (index < 0 || size_t(index) >= input.runs.size())
        throw core::Error("report: chart refers to run " + std::to_string(index) + " of "
                          + std::to_string(input.runs.size()));
    return input.runs[size_t(index)];
}

LayerErrorPlot::Series seriesOf(const core::ReportRun &run)
{
    LayerErrorPlot::Series s;
    s.name = QString::fromStdString(run.name);
    s.layers = run.layers;
    for (const core::BlockResult &b : run.blocks)
        s.blocks.emplace_back(b.block, b.cumulativeError);
    return s;
}

// Builds the live-view widget for a chart; returns it (owning the plot) and the plot.
std::unique_ptr<QWidget> buildPlot(const core::ReportInput &input, const core::ReportChart &chart, QCustomPlot *&plot)
{
    switch (chart.kind) {
    case core::ReportChart::Kind::LayerError:
    case core::ReportChart::Kind::LayerErrorComparison: {
        auto w = std::make_unique<LayerErrorPlot>();
        std::vector<LayerErrorPlot::Series> series;
        for (int i : chart.runs)
            series.push_back(seriesOf(runAt(input, i)));
        w->setSeries({}, series);
        plot = w->plot();
        return w;
    }
    case core::ReportChart::Kind::Pareto: {
        auto w = std::make_unique<ParetoPlot>();
        const bool kld = chart.loss == core::ReportLoss::Kld;
        std::vector<ParetoPlot::Point> points;
        double baseline = kld ? 0.0 : NAN;
        for (const core::ReportRun &r : input.runs)
            if (const std::optional<double> loss = core::reportLoss(r, chart.loss)) {
                points.push_back({ QString::fromStdString(r.name), r.bitsPerWeight, *loss });
                if (!kld && std::isnan(baseline))
                    baseline = r.evaluation->originalPerplexity;
            }
        w->setPoints(points,
            kld ? QObject::tr("mean KL divergence from the original (nats)")
                : QObject::tr("perplexity (dashed: original model)"),
            baseline);
        plot = w->plot();
        return w;
    }
    case core::ReportChart::Kind::Histogram: {
        if (chart.histogram < 0 || size_t(chart.histogram) >= input.histograms.size())
            throw core::Error("report: chart refers to a missing histogram");
        auto w = std::make_unique<HistogramPlot>();
        const core::WeightStats &s = input.histograms[size_t(chart.histogram)];
        w->setStats(s, s.outlierSigma);
        plot = w->plot();
        return w;
    }
    }
    throw core::Error("report: unknown chart kind");
}

QByteArray pngBytes(const QImage &image, int dpi)
{
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    QImageWriter writer(&buffer, "png");
    QImage copy = image;
    copy.setDotsPerMeterX(int(std::lround(dpi / 0.0254)));
    copy.setDotsPerMeterY(int(std::lround(dpi / 0.0254)));
    if (!writer.write(copy))
        throw core::Error("report: PNG encoding failed: " + writer.errorString().toStdString());
    return bytes;
}

} // namespace

QImage renderPlotImage(QCustomPlot *plot, int width, int height, int dpi)
{
    const int pw = int(std::lround(width * dpi / 96.0)), ph = int(std::lround(height * dpi / 96.0));
    QImage image(pw, ph, QImage::Format_ARGB32_Premultiplied);
    image.fill(Qt::white);
    image.setDotsPerMeterX(int(std::lround(dpi / 0.0254)));
    image.setDotsPerMeterY(int(std::lround(dpi / 0.0254)));
    QCPPainter painter(&image);
    painter.setMode(QCPPainter::pmNoCaching);
    // Above 96 DPI lines scale with the text (cosmetic pens would stay one device pixel wide).
    if (dpi > 96)
        painter.setMode(QCPPainter::pmNonCosmetic);
    painter.scale(double(pw) / width, double(ph) / height);
    plot->toPainter(&painter, width, height);
    painter.end();
    return image;
}

namespace {

// Paints the plot as vectors (text as text, pens scaled with the drawing) with chart pixels mapped onto
// the whole device (identity for the SVG generator, the page for the PDF writer).
void paintVector(QCustomPlot *plot, QPaintDevice *device, int width, int height, const char *what)
{
    QCPPainter painter;
    if (!painter.begin(device))
        throw core::Error(std::string("report: cannot start the ") + what + " painter");
    painter.setMode(QCPPainter::pmVectorized);
    painter.setMode(QCPPainter::pmNoCaching);
    painter.setMode(QCPPainter::pmNonCosmetic);
    painter.setWindow(0, 0, width, height);
    plot->toPainter(&painter, width, height);
    painter.end();
}

} // namespace

QByteArray renderPlotSvg(QCustomPlot *plot, int width, int height, const QString &title)
{
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    QSvgGenerator svg;
    svg.setOutputDevice(&buffer);
    svg.setSize(QSize(width, height));
    svg.setViewBox(QRect(0, 0, width, height));
    svg.setResolution(96);
    svg.setTitle(title);
    svg.setDescription(QStringLiteral("QuantScope report chart"));
    paintVector(plot, &svg, width, height, "SVG");
    return bytes;
}

QByteArray renderPlotPdf(QCustomPlot *plot, int width, int height, const QString &title)
{
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    {
        QPdfWriter pdf(&buffer);
        pdf.setCreator(QStringLiteral("QuantScope"));
        pdf.setTitle(title);
        pdf.setPageLayout(QPageLayout(
            QPageSize(QSizeF(width * 0.75, height * 0.75), QPageSize::Point, QString(), QPageSize::ExactMatch),
            QPageLayout::Portrait, QMarginsF(0, 0, 0, 0)));
        paintVector(plot, &pdf, width, height, "PDF");
    } // the writer finishes the file when it goes
    return bytes;
}

RenderedChart renderReportChart(
    const core::ReportInput &input, const core::ReportChart &chart, const core::ReportOptions &options)
{
    Q_ASSERT_X(QThread::currentThread() == qApp->thread(), "renderReportChart", "QCustomPlot needs the GUI thread");
    QCustomPlot *plot = nullptr;
    const std::unique_ptr<QWidget> owner = buildPlot(input, chart, plot);
    const QString title = QString::fromStdString(chart.title);
    applyReportStyle(plot, title);
    RenderedChart out;
    out.chart = chart;
    if (options.png)
        out.png = renderPlotImage(plot, options.width, options.height, options.dpi);
    if (options.svg)
        out.svg = renderPlotSvg(plot, options.width, options.height, title);
    if (options.pdf)
        out.pdf = renderPlotPdf(plot, options.width, options.height, title);
    return out;
}

std::vector<core::ReportFile> encodeReportChart(const RenderedChart &chart, int dpi)
{
    std::vector<core::ReportFile> files;
    const std::string base = "charts/" + chart.chart.stem;
    if (!chart.png.isNull()) {
        const QByteArray png = pngBytes(chart.png, dpi);
        files.push_back({ base + ".png", png.toStdString() });
    }
    if (!chart.svg.isEmpty())
        files.push_back({ base + ".svg", chart.svg.toStdString() });
    if (!chart.pdf.isEmpty())
        files.push_back({ base + ".pdf", chart.pdf.toStdString() });
    return files;
}

} // namespace qs::ui
