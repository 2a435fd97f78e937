#include "CalibrationDock.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QToolButton>
#include <QVBoxLayout>

#include "ModelSession.h"
#include "Settings.h"
#include "eval/CalibrationRun.h"
#include "eval/Evaluate.h"

namespace qs::ui {

namespace {

QWidget *fileRow(QWidget *parent, QLineEdit *edit, const QString &title)
{
    auto *row = new QWidget(parent);
    auto *layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit, 1);
    auto *browse = new QToolButton(row);
    browse->setText(QStringLiteral("\u2026"));
    browse->setToolTip(title);
    layout->addWidget(browse);
    QObject::connect(browse, &QToolButton::clicked, row, [edit, title, row] {
        const QString path = QFileDialog::getOpenFileName(row, title, QFileInfo(edit->text()).absolutePath(),
                                                          QObject::tr("Text files (*.txt *.raw);;All files (*)"));
        if (!path.isEmpty())
            edit->setText(path);
    });
    return row;
}

QTableWidgetItem *numberItem(double value, const QString &text)
{
    auto *item = new QTableWidgetItem(text);
    item->setData(Qt::UserRole, value);
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

} // namespace

CalibrationDock::CalibrationDock(ModelSession *session, Settings *settings, QWidget *parent)
    : QDockWidget(tr("Calibration && evaluation"), parent), m_session(session), m_settings(settings),
      m_calibText(new QLineEdit(this)), m_samples(new QSpinBox(this)), m_seqLen(new QSpinBox(this)),
      m_seed(new QSpinBox(this)), m_calibrate(new QPushButton(tr("Run calibration"), this)),
      m_activationTable(new QTableWidget(this)), m_evalText(new QLineEdit(this)), m_ctx(new QSpinBox(this)),
      m_protocol(new QComboBox(this)), m_maxChunks(new QSpinBox(this)), m_evaluate(new QPushButton(tr("Evaluate"), this)),
      m_evalTable(new QTableWidget(this))
{
    setObjectName(QStringLiteral("CalibrationDock"));
    auto *content = new QWidget(this);
    auto *layout = new QVBoxLayout(content);

    auto *calib = new QGroupBox(tr("Calibration"), content);
    auto *cform = new QFormLayout(calib);
    m_calibText->setPlaceholderText(tr("calibration text file"));
    m_calibText->setObjectName(QStringLiteral("calibrationText"));
    m_calibText->setText(settings->calibrationText());
    cform->addRow(tr("Text:"), fileRow(calib, m_calibText, tr("Calibration text")));
    m_samples->setRange(1, 100000);
    m_samples->setValue(settings->calibrationSamples());
    m_seqLen->setRange(2, 1 << 20);
    m_seqLen->setValue(settings->calibrationSeqLen());
    m_seed->setRange(0, 2147483647);
    m_seed->setValue(settings->calibrationSeed());
    cform->addRow(tr("Samples:"), m_samples);
    cform->addRow(tr("Tokens per sample:"), m_seqLen);
    cform->addRow(tr("Seed:"), m_seed);
    m_calibrate->setObjectName(QStringLiteral("runCalibrationButton"));
    m_calibrate->setToolTip(tr("Run random windows of the text through the model and collect activation statistics"));
    cform->addRow(m_calibrate);
    layout->addWidget(calib);

    m_activationTable->setObjectName(QStringLiteral("activationTable"));
    m_activationTable->setColumnCount(5);
    m_activationTable->setHorizontalHeaderLabels({tr("Block"), tr("Input"), tr("absmax"), tr("\u00d7 median"), tr("Outlier channels")});
    m_activationTable->verticalHeader()->hide();
    m_activationTable->horizontalHeader()->setStretchLastSection(true);
    m_activationTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_activationTable->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_activationTable->setSortingEnabled(true);
    m_activationTable->setToolTip(tr("Activation outlier channels per linear input; select a row to show its layer"));
    layout->addWidget(m_activationTable, 2);

    auto *eval = new QGroupBox(tr("Evaluation"), content);
    auto *eform = new QFormLayout(eval);
    m_evalText->setPlaceholderText(tr("evaluation text, e.g. wiki.test.raw"));
    m_evalText->setObjectName(QStringLiteral("evaluationText"));
    m_evalText->setText(settings->evalText());
    eform->addRow(tr("Text:"), fileRow(eval, m_evalText, tr("Evaluation text")));
    m_ctx->setRange(8, 1 << 20);
    m_ctx->setValue(settings->evalContext());
    eform->addRow(tr("Context:"), m_ctx);
    m_protocol->addItem(tr("llama.cpp (score 2nd half of each chunk)"), QStringLiteral("llamacpp"));
    m_protocol->addItem(tr("GPTQ (score every token)"), QStringLiteral("gptq"));
    m_protocol->setCurrentIndex(settings->evalProtocol() == QLatin1String("gptq") ? 1 : 0);
    eform->addRow(tr("Protocol:"), m_protocol);
    m_maxChunks->setRange(0, 1 << 30);
    m_maxChunks->setSpecialValueText(tr("all"));
    m_maxChunks->setValue(settings->evalMaxChunks());
    eform->addRow(tr("Max chunks:"), m_maxChunks);
    m_evaluate->setObjectName(QStringLiteral("evaluateButton"));
    eform->addRow(m_evaluate);
    layout->addWidget(eval);

    m_evalTable->setObjectName(QStringLiteral("evaluationTable"));
    m_evalTable->setColumnCount(6);
    m_evalTable->setHorizontalHeaderLabels({tr("Model"), tr("Perplexity"), tr("Protocol"), tr("ctx"), tr("Scored"), tr("Text")});
    m_evalTable->verticalHeader()->hide();
    m_evalTable->horizontalHeader()->setStretchLastSection(true);
    m_evalTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    layout->addWidget(m_evalTable, 1);
    setWidget(content);

    connect(m_calibrate, &QPushButton::clicked, this, &CalibrationDock::startCalibration);
    connect(m_evaluate, &QPushButton::clicked, this, &CalibrationDock::startEvaluation);
    connect(m_calibText, &QLineEdit::textChanged, this, [this](const QString &t) {
        m_settings->setCalibrationText(t);
        updateEnabled();
    });
    connect(m_evalText, &QLineEdit::textChanged, this, [this](const QString &t) {
        m_settings->setEvalText(t);
        updateEnabled();
    });
    connect(m_samples, &QSpinBox::valueChanged, this, [this](int v) { m_settings->setCalibrationSamples(v); });
    connect(m_seqLen, &QSpinBox::valueChanged, this, [this](int v) { m_settings->setCalibrationSeqLen(v); });
    connect(m_seed, &QSpinBox::valueChanged, this, [this](int v) { m_settings->setCalibrationSeed(v); });
    connect(m_ctx, &QSpinBox::valueChanged, this, [this](int v) { m_settings->setEvalContext(v); });
    connect(m_maxChunks, &QSpinBox::valueChanged, this, [this](int v) { m_settings->setEvalMaxChunks(v); });
    connect(m_protocol, &QComboBox::currentIndexChanged, this,
            [this] { m_settings->setEvalProtocol(m_protocol->currentData().toString()); });
    connect(session, &ModelSession::modelOpened, this, [this] { updateEnabled(); });
    connect(session, &ModelSession::calibrationChanged, this, [this] { fillActivationTable(); });
    connect(session, &ModelSession::evaluationsChanged, this, [this] { fillEvaluationTable(); });
    connect(m_activationTable, &QTableWidget::itemSelectionChanged, this, [this] {
        const QList<QTableWidgetItem *> items = m_activationTable->selectedItems();
        if (items.isEmpty())
            return;
        const int row = items.first()->row();
        Q_EMIT activationInputSelected(m_activationTable->item(row, 0)->data(Qt::UserRole).toInt(),
                                       m_activationTable->item(row, 1)->data(Qt::UserRole).toInt());
    });
    updateEnabled();
}

void CalibrationDock::setCalibrationText(const QString &path) { m_calibText->setText(path); }
void CalibrationDock::setEvaluationText(const QString &path) { m_evalText->setText(path); }
void CalibrationDock::setCalibrationSize(int samples, int seqLen)
{
    m_samples->setValue(samples);
    m_seqLen->setValue(seqLen);
}
void CalibrationDock::setEvaluationContext(int ctx, int maxChunks)
{
    m_ctx->setValue(ctx);
    m_maxChunks->setValue(maxChunks);
}

void CalibrationDock::setCalibrationSeed(int seed) { m_seed->setValue(seed); }
void CalibrationDock::setEvaluationProtocol(const QString &protocol)
{
    const int i = m_protocol->findData(protocol);
    if (i >= 0)
        m_protocol->setCurrentIndex(i);
}

void CalibrationDock::updateEnabled()
{
    const bool model = m_session->model() != nullptr;
    m_calibrate->setEnabled(model && !m_calibText->text().isEmpty());
    m_evaluate->setEnabled(model && !m_evalText->text().isEmpty());
}

void CalibrationDock::startCalibration()
{
    core::CalibrationRunOptions options;
    options.samples = m_samples->value();
    options.seqLen = m_seqLen->value();
    options.seed = uint64_t(m_seed->value());
    m_session->runCalibration(m_calibText->text(), options);
}

void CalibrationDock::startEvaluation()
{
    core::EvalOptions options;
    options.ctx = m_ctx->value();
    options.maxChunks = m_maxChunks->value();
    options.protocol = core::parseEvalProtocol(m_protocol->currentData().toString().toStdString());
    m_session->evaluate(m_evalText->text(), options);
}

void CalibrationDock::fillActivationTable()
{
    m_activationTable->setSortingEnabled(false);
    m_activationTable->setRowCount(0);
    const auto calibration = m_session->calibration();
    if (calibration) {
        m_activationTable->setRowCount(int(calibration->stats.size()));
        int row = 0;
        for (const core::InputActivationStats &s : calibration->stats) {
            const core::ActivationSummary sum = core::summarizeActivations(s, 6);
            auto *block = numberItem(s.block, s.block < 0 ? tr("head") : QString::number(s.block));
            block->setData(Qt::UserRole, s.block);
            auto *input = new QTableWidgetItem(QString::fromStdString(sum.input));
            input->setData(Qt::UserRole, int(s.input));
            double topRatio = 0;
            QStringList channels;
            for (const auto &c : sum.topOutliers) {
                topRatio = std::max(topRatio, c.ratio);
                channels << QStringLiteral("%1 (%2\u00d7, %3% tok.)").arg(c.channel).arg(c.ratio, 0, 'f', 0).arg(c.tokenShare * 100, 0, 'f', 1);
            }
            m_activationTable->setItem(row, 0, block);
            m_activationTable->setItem(row, 1, input);
            m_activationTable->setItem(row, 2, numberItem(s.absMax, QString::number(s.absMax, 'g', 4)));
            m_activationTable->setItem(row, 3, numberItem(topRatio, topRatio > 0 ? QString::number(topRatio, 'f', 1) : QString()));
            auto *list = new QTableWidgetItem(sum.outlierCount ? QStringLiteral("%1: %2").arg(sum.outlierCount).arg(channels.join(QStringLiteral(", "))) : tr("none"));
            list->setToolTip(list->text());
            m_activationTable->setItem(row, 4, list);
            ++row;
        }
    }
    m_activationTable->setSortingEnabled(true);
    m_activationTable->resizeColumnsToContents();
}

void CalibrationDock::fillEvaluationTable()
{
    const QList<ModelSession::Evaluation> &evals = m_session->evaluations();
    m_evalTable->setRowCount(int(evals.size()));
    for (int r = 0; r < evals.size(); ++r) {
        const ModelSession::Evaluation &e = evals.at(r);
        m_evalTable->setItem(r, 0, new QTableWidgetItem(e.label));
        m_evalTable->setItem(r, 1, numberItem(e.result->perplexity, QString::number(e.result->perplexity, 'f', 4)));
        m_evalTable->setItem(r, 2, new QTableWidgetItem(QString::fromStdString(e.result->protocol)));
        m_evalTable->setItem(r, 3, numberItem(e.result->ctx, QString::number(e.result->ctx)));
        m_evalTable->setItem(r, 4, numberItem(double(e.result->tokensScored), QString::number(e.result->tokensScored)));
        m_evalTable->setItem(r, 5, new QTableWidgetItem(QFileInfo(e.textPath).fileName()));
    }
    m_evalTable->resizeColumnsToContents();
}

} // namespace qs::ui
