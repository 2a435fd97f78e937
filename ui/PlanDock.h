#pragma once
// The plan dock: the per-layer plan table (edit one cell and every selected row follows), a filter,
// bulk rules, loading and saving plan files, and the Quantize button.

#include <QDockWidget>

class QLineEdit;
class QPushButton;
class QTableView;
class QUndoStack;

namespace qs::ui {

class ModelSession;
class PlanModel;

class PlanDock : public QDockWidget
{
    Q_OBJECT
public:
    PlanDock(ModelSession *session, QUndoStack *undoStack, QWidget *parent = nullptr);
    PlanModel *planModel() const { return m_model; }
    QTableView *view() const { return m_view; }
    QList<int> selectedRows() const;

    void showRuleDialog();
    void loadPlan();
    void savePlan();

Q_SIGNALS:
    void quantizeRequested();
    void layerSelected(int tensorIndex);
    void message(const QString &text);

private:
    void applyFilter(const QString &text);

    ModelSession *m_session;
    PlanModel *m_model;
    QTableView *m_view;
    QLineEdit *m_filter;
    QPushButton *m_quantize;
};

} // namespace qs::ui
