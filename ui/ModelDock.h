#pragma once
// The model tree dock: blocks → layers with shape, type, parameters and statistics; sortable and
// filterable. Selecting a layer emits tensorSelected.

#include <QDockWidget>

class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QTreeView;

namespace qs::ui {

class ModelSession;
class ModelTreeModel;

class ModelDock : public QDockWidget
{
    Q_OBJECT
public:
    explicit ModelDock(ModelSession *session, QWidget *parent = nullptr);
    ModelTreeModel *treeModel() const { return m_model; }
    QTreeView *view() const { return m_view; }
    void selectTensor(int tensorIndex);

Q_SIGNALS:
    void tensorSelected(int tensorIndex);
    void compareMethodsRequested(int tensorIndex); // context menu "Compare methods…" on a block linear

private:
    void updateHeader();
    void fitColumns();
    bool m_fittedWithStats = false;

    ModelSession *m_session;
    ModelTreeModel *m_model;
    QSortFilterProxyModel *m_proxy;
    QTreeView *m_view;
    QLabel *m_header;
    QLineEdit *m_filter;
};

} // namespace qs::ui
