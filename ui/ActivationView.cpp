#include "ActivationView.h"

#include <QLabel>
#include <QSplitter>
#include <QVBoxLayout>

#include "ModelSession.h"
#include "eval/CalibrationRun.h"
#include "model/ActivationObserver.h"
#include "model/Model.h"
#include "plots/ChannelPlot.h"
#include "plots/HistogramPlot.h"
#include "stats/ActivationStats.h"
#include "stats/WeightStats.h"

namespace qs::ui {

namespace {
constexpr double kWeightChannelFactor = 4.0;
}

ActivationView::ActivationView(ModelSession *session, QWidget *parent)
    : QWidget(parent), m_session(session), m_title(new QLabel(this)), m_histogram(new HistogramPlot(this)),
      m_activationChannels(new ChannelPlot(this)), m_weightChannels(new ChannelPlot(this)), m_outlierList(new QLabel(this))
{
    setObjectName(QStringLiteral("ActivationView"));
    auto *layout = new QVBoxLayout(this);
    m_title->setTextFormat(Qt::RichText);
    m_title->setWordWrap(true);
    layout->addWidget(m_title);
    auto *split = new QSplitter(Qt::Vertical, this);
    split->addWidget(m_histogram);
    split->addWidget(m_activationChannels);
    split->addWidget(m_weightChannels);
    layout->addWidget(split, 1);
    m_outlierList->setWordWrap(true);
    m_outlierList->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_outlierList);

    connect(session, &ModelSession::calibrationChanged, this, [this] { refresh(); });
    connect(session, &ModelSession::statsChanged, this, [this] { refresh(); });
    connect(session, &ModelSession::modelOpened, this, [this] { showTensor(-1); });
    refresh();
}

void ActivationView::showTensor(int tensorIndex)
{
    m_tensor = tensorIndex;
    refresh();
}

void ActivationView::refresh()
{
    const auto model = m_session->model();
    const bool linear = model && m_tensor >= 0 && size_t(m_tensor) < model->tensors.size()
                        && core::isLinearRole(model->tensors[size_t(m_tensor)].role);
    const core::InputActivationStats *a = linear ? m_session->activationsFor(m_tensor) : nullptr;
    if (!a) {
        m_title->setText(!model ? tr("<i>Open a model, then run calibration (Calibration &amp; evaluation dock).</i>")
                         : !linear ? tr("<i>Select a linear layer (q/k/v/o, gate/up/down, lm_head) to see its input activations.</i>")
                                   : tr("<i>No activation statistics yet: run calibration in the Calibration &amp; evaluation dock.</i>"));
        m_histogram->clear();
        m_activationChannels->clear();
        m_weightChannels->clear();
        m_outlierList->clear();
        return;
    }
    const core::Tensor &t = model->tensors[size_t(m_tensor)];
    const core::ActivationSummary sum = core::summarizeActivations(*a, 12);
    QString layers;
    for (const std::string &l : a->layers())
        layers += (layers.isEmpty() ? QString() : QStringLiteral(", ")) + QString::fromStdString(l).section(QLatin1Char('.'), -2);
    m_title->setText(tr("<b>Input of %1</b> &nbsp; (%2, shared by %3) &nbsp; %L4 tokens, %5 channels, |x| max %6, "
                        "median channel absmax %7")
                         .arg(QString::fromStdString(t.name).toHtmlEscaped(), QString::fromLatin1(core::linearInputName(a->input)), layers)
                         .arg(qulonglong(a->tokens))
                         .arg(a->cols)
                         .arg(a->absMax, 0, 'g', 4)
                         .arg(a->outlierMedian, 0, 'g', 4));
    m_histogram->setBins(a->histogramEdges(), a->histogramCounts, -a->outlierThreshold, a->outlierThreshold,
                         tr("activation value (dashed: %1\u00d7 median channel absmax)").arg(a->outlierFactor),
                         tr("activations"));
    m_activationChannels->setChannels(tr("activation input channel"), a->channelAbsMax, a->outlierFactor, tr("|x| max"));
    if (const core::WeightStats *w = m_session->statsFor(m_tensor))
        m_weightChannels->setChannels(tr("weight input channel (column) of %1").arg(QString::fromStdString(t.name).section(QLatin1Char('.'), -2)),
                                      w->colAbsMax, kWeightChannelFactor);
    else
        m_weightChannels->clear();
    QStringList channels;
    for (const auto &c : sum.topOutliers)
        channels << tr("%1 (%2\u00d7 median, %3% of tokens)").arg(c.channel).arg(c.ratio, 0, 'f', 1).arg(c.tokenShare * 100, 0, 'f', 2);
    m_outlierList->setText(sum.outlierCount == 0
                               ? tr("No activation outlier channels above %1\u00d7 the median channel absmax.").arg(a->outlierFactor)
                               : tr("<b>%1 outlier channels</b> (absmax > %2\u00d7 median): %3")
                                     .arg(sum.outlierCount)
                                     .arg(a->outlierFactor)
                                     .arg(channels.join(QStringLiteral("; "))));
}

} // namespace qs::ui
