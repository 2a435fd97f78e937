#pragma once
// Calibration and evaluation settings with their run buttons, and the results: a summary of the
// activation statistics (outlier channels per layer input) and a table of perplexity evaluations.

#include <QDockWidget>

class QComboBox;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace qs::ui {

class ModelSession;
class Settings;

class CalibrationDock : public QDockWidget
{
    Q_OBJECT
public:
    CalibrationDock(ModelSession *session, Settings *settings, QWidget *parent = nullptr);

    QTableWidget *activationTable() const { return m_activationTable; }
    QTableWidget *evaluationTable() const { return m_evalTable; }
    void startCalibration();
    void startEvaluation();
    void setCalibrationText(const QString &path);
    void setEvaluationText(const QString &path);
    void setCalibrationSize(int samples, int seqLen);
    void setEvaluationContext(int ctx, int maxChunks);
    void setCalibrationSeed(int seed);
    void setEvaluationProtocol(const QString &protocol); // "llamacpp" | "gptq"

Q_SIGNALS:
    void activationInputSelected(int block, int input); // core::LinearInput as int

private:
    void updateEnabled();
    void fillActivationTable();
    void fillEvaluationTable();

    ModelSession *m_session;
    Settings *m_settings;
    QLineEdit *m_calibText;
    QSpinBox *m_samples;
    QSpinBox *m_seqLen;
    QSpinBox *m_seed;
    QPushButton *m_calibrate;
    QTableWidget *m_activationTable;
    QLineEdit *m_evalText;
    QSpinBox *m_ctx;
    QComboBox *m_protocol;
    QSpinBox *m_maxChunks;
    QPushButton *m_evaluate;
    QTableWidget *m_evalTable;
};

} // namespace qs::ui
