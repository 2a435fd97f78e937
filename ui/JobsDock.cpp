#include "JobsDock.h"

#include <QApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QPainter>
#include <QPushButton>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QVBoxLayout>

#include "JobListModel.h"
#include "JobRunner.h"

namespace qs::ui {

namespace {

class ProgressDelegate : public QStyledItemDelegate
{
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    void paint(QPainter *painter, const QStyleOptionViewItem &option, const QModelIndex &index) const override
    {
        if (index.column() != JobListModel::ProgressColumn) {
            QStyledItemDelegate::paint(painter, option, index);
            return;
        }
        QStyleOptionProgressBar bar;
        bar.rect = option.rect.adjusted(2, 2, -2, -2);
        bar.minimum = 0;
        bar.maximum = 1000;
        bar.progress = int(index.data(JobListModel::FractionRole).toDouble() * 1000);
        bar.text = index.data().toString();
        bar.textVisible = true;
        bar.state = option.state | QStyle::State_Enabled | QStyle::State_Horizontal;
        bar.textAlignment = Qt::AlignCenter;
        const QWidget *widget = option.widget;
        QStyle *style = widget ? widget->style() : QApplication::style();
        style->drawControl(QStyle::CE_ProgressBar, &bar, painter, widget);
    }
};

} // namespace

JobsDock::JobsDock(JobRunner *runner, QWidget *parent)
    : QDockWidget(tr("Jobs"), parent), m_runner(runner), m_model(new JobListModel(runner, this))
{
    setObjectName(QStringLiteral("JobsDock"));
    auto *content = new QWidget(this);
    auto *layout = new QVBoxLayout(content);
    layout->setContentsMargins(2, 2, 2, 2);

    auto *view = new QTableView(content);
    view->setObjectName(QStringLiteral("jobsView"));
    view->setModel(m_model);
    view->setItemDelegate(new ProgressDelegate(view));
    view->setSelectionBehavior(QAbstractItemView::SelectRows);
    view->setSelectionMode(QAbstractItemView::SingleSelection);
    view->verticalHeader()->hide();
    view->horizontalHeader()->setStretchLastSection(true);
    view->setColumnWidth(JobListModel::TitleColumn, 220);
    view->setColumnWidth(JobListModel::ProgressColumn, 140);
    layout->addWidget(view);

    auto *buttons = new QHBoxLayout;
    auto *cancel = new QPushButton(tr("Cancel"), content);
    cancel->setObjectName(QStringLiteral("cancelJobButton"));
    cancel->setToolTip(tr("Cancel the selected job"));
    auto *clear = new QPushButton(tr("Clear finished"), content);
    buttons->addWidget(cancel);
    buttons->addWidget(clear);
    buttons->addStretch();
    layout->addLayout(buttons);
    setWidget(content);

    connect(cancel, &QPushButton::clicked, this, [this, view] {
        const QModelIndex current = view->currentIndex();
        if (current.isValid())
            m_runner->cancel(m_model->jobAt(current.row()));
    });
    connect(clear, &QPushButton::clicked, m_model, &JobListModel::clearEnded);
}

} // namespace qs::ui
