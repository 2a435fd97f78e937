#include "PlanDock.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFile>
#include <QFileInfo>
#include <QSaveFile>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QSpinBox>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QUndoStack>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include "ModelSession.h"
#include "PlanModel.h"
#include "JobRunner.h"
#include "quant/Plan.h"
#include "common/Error.h"
#include "model/Model.h"

namespace qs::ui {

namespace {

// Combo-box editors from the model's ChoicesRole; committing applies the value to every selected row.
class PlanDelegate : public QStyledItemDelegate
{
public:
    PlanDelegate(PlanDock *dock) : QStyledItemDelegate(dock), m_dock(dock) {}

    QWidget *createEditor(QWidget *parent, const QStyleOptionViewItem &option, const QModelIndex &index) const override
    {
        const QStringList choices = index.data(PlanModel::ChoicesRole).toStringList();
        if (choices.isEmpty())
            return QStyledItemDelegate::createEditor(parent, option, index);
        auto *combo = new QComboBox(parent);
        for (const QString &c : choices)
            combo->addItem(index.column() == PlanModel::GroupColumn && c == QLatin1String("-1") ? tr("per channel") : c, c);
        return combo;
    }
    void setEditorData(QWidget *editor, const QModelIndex &index) const override
    {
        if (auto *combo = qobject_cast<QComboBox *>(editor)) {
            const int i = combo->findData(index.data(Qt::EditRole).toString());
            combo->setCurrentIndex(std::max(0, i));
            return;
        }
        QStyledItemDelegate::setEditorData(editor, index);
    }
    void setModelData(QWidget *editor, QAbstractItemModel *model, const QModelIndex &index) const override
    {
        auto *combo = qobject_cast<QComboBox *>(editor);
        if (!combo) {
            QStyledItemDelegate::setModelData(editor, model, index);
            return;
        }
        QList<int> rows = m_dock->selectedRows();
        if (!rows.contains(index.row()))
            rows = {index.row()};
        auto *plan = static_cast<PlanModel *>(model);
        if (!plan->setDataForRows(rows, index.column(), combo->currentData()))
            Q_EMIT m_dock->message(plan->lastError());
    }

private:
    PlanDock *m_dock;
};

} // namespace

PlanDock::PlanDock(ModelSession *session, QUndoStack *undoStack, QWidget *parent)
    : QDockWidget(tr("Plan"), parent), m_session(session), m_model(new PlanModel(undoStack, this)),
      m_view(new QTableView(this)), m_filter(new QLineEdit(this)), m_quantize(new QPushButton(tr("Quantize"), this))
{
    setObjectName(QStringLiteral("PlanDock"));
    auto *content = new QWidget(this);
    auto *layout = new QVBoxLayout(content);
    layout->setContentsMargins(2, 2, 2, 2);

    auto *bar = new QHBoxLayout;
    m_filter->setPlaceholderText(tr("Filter layers"));
    m_filter->setClearButtonEnabled(true);
    bar->addWidget(m_filter, 1);
    auto *rule = new QPushButton(tr("Rule\u2026"), content);
    rule->setObjectName(QStringLiteral("planRuleButton"));
    rule->setToolTip(tr("Apply a method to every layer matching a pattern, e.g. *.mlp.down_proj"));
    auto *load = new QPushButton(tr("Load\u2026"), content);
    auto *save = new QPushButton(tr("Save\u2026"), content);
    bar->addWidget(rule);
    bar->addWidget(load);
    bar->addWidget(save);
    layout->addLayout(bar);

    m_view->setObjectName(QStringLiteral("planView"));
    m_view->setModel(m_model);
    m_view->setItemDelegate(new PlanDelegate(this));
    m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_view->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed | QAbstractItemView::SelectedClicked);
    m_view->verticalHeader()->hide();
    m_view->horizontalHeader()->setStretchLastSection(true);
    m_view->setAlternatingRowColors(true);
    layout->addWidget(m_view, 1);

    m_quantize->setObjectName(QStringLiteral("quantizeButton"));
    m_quantize->setToolTip(tr("Quantize the model with this plan (Ctrl+R)"));
    m_quantize->setEnabled(false);
    layout->addWidget(m_quantize);
    setWidget(content);

    connect(m_filter, &QLineEdit::textChanged, this, &PlanDock::applyFilter);
    connect(rule, &QPushButton::clicked, this, &PlanDock::showRuleDialog);
    connect(load, &QPushButton::clicked, this, &PlanDock::loadPlan);
    connect(save, &QPushButton::clicked, this, &PlanDock::savePlan);
    connect(m_quantize, &QPushButton::clicked, this, &PlanDock::quantizeRequested);
    connect(m_view->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this](const QModelIndex &current) {
        if (current.isValid())
            Q_EMIT layerSelected(current.data(PlanModel::TensorIndexRole).toInt());
    });
    connect(session, &ModelSession::modelOpened, this, [this] {
        core::MethodConfig def = core::MethodConfig::defaults("rtn");
        def.set("bits", int64_t(4));
        def.set("group_size", int64_t(32));
        m_model->setModel(m_session->model(), def);
        m_view->resizeColumnsToContents();
        m_quantize->setEnabled(m_model->rowCount() > 0);
        applyFilter(m_filter->text());
    });
}

QList<int> PlanDock::selectedRows() const
{
    QList<int> rows;
    for (const QModelIndex &i : m_view->selectionModel()->selectedRows())
        rows << i.row();
    std::sort(rows.begin(), rows.end());
    return rows;
}

void PlanDock::applyFilter(const QString &text)
{
    for (int r = 0; r < m_model->rowCount(); ++r)
        m_view->setRowHidden(r, !text.isEmpty() && !m_model->index(r, 0).data().toString().contains(text, Qt::CaseInsensitive));
}

void PlanDock::showRuleDialog()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Apply a rule to matching layers"));
    auto *form = new QFormLayout(&dialog);
    auto *pattern = new QLineEdit(QStringLiteral("model.layers.*.mlp.down_proj"), &dialog);
    pattern->setToolTip(tr("Glob over canonical layer names (* matches anything, dots too); prefix re: for a regular expression"));
    auto *method = new QComboBox(&dialog);
    for (const core::MethodInfo &m : core::quantMethods())
        method->addItem(QString::fromStdString(m.displayName), QString::fromStdString(m.name));
    method->setCurrentIndex(std::max(0, method->findData(QStringLiteral("gptq"))));
    auto *bits = new QSpinBox(&dialog);
    bits->setRange(2, 8);
    bits->setValue(4);
    auto *group = new QComboBox(&dialog);
    for (int g : {-1, 32, 64, 128, 256})
        group->addItem(g < 0 ? tr("per channel") : QString::number(g), g);
    group->setCurrentIndex(1);
    auto *symmetric = new QCheckBox(&dialog);
    auto *quantize = new QCheckBox(&dialog);
    quantize->setChecked(true);
    form->addRow(tr("Layers matching:"), pattern);
    form->addRow(tr("Method:"), method);
    form->addRow(tr("Bits:"), bits);
    form->addRow(tr("Group size:"), group);
    form->addRow(tr("Symmetric:"), symmetric);
    form->addRow(tr("Quantize (unchecked: skip):"), quantize);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
    form->addRow(buttons);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    if (dialog.exec() != QDialog::Accepted)
        return;
    try {
        core::MethodConfig c = core::MethodConfig::defaults(method->currentData().toString().toStdString());
        c.set("bits", int64_t(bits->value()));
        c.set("group_size", int64_t(group->currentData().toInt()));
        if (c.info().param("symmetric"))
            c.set("symmetric", symmetric->isChecked());
        c.validate(pattern->text().toStdString());
        const int n = m_model->applyRule(pattern->text(), c, quantize->isChecked());
        Q_EMIT message(tr("Rule %1: %2 layers changed").arg(pattern->text()).arg(n));
    } catch (const core::Error &e) {
        QMessageBox::warning(this, tr("Invalid rule"), QString::fromUtf8(e.what()));
    }
}

void PlanDock::savePlan()
{
    const QString path = QFileDialog::getSaveFileName(this, tr("Save plan"), QStringLiteral("plan.json"), tr("Plan files (*.json)"));
    if (path.isEmpty())
        return;
    const nlohmann::json json = m_model->toPlanJson();
    const std::string target = path.toStdString();
    // Written by the core (temporary file, then rename) in a job: the GUI thread does no file I/O.
    m_session->runner()->run<bool>(
        tr("Save plan %1").arg(QFileInfo(path).fileName()), QString(),
        [json, target](core::Progress &) {
            core::Plan::fromJson(json).save(target);
            return true;
        },
        [this, path](std::shared_ptr<const bool>) { Q_EMIT message(tr("Saved plan to %1").arg(path)); },
        [this](const QString &error) { QMessageBox::warning(this, tr("Could not save plan"), error); });
}

void PlanDock::loadPlan()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Load plan"), QString(), tr("Plan files (*.json)"));
    if (path.isEmpty() || !m_session->model())
        return;
    const std::shared_ptr<const core::Model> model = m_session->model();
    const std::string source = path.toStdString();
    m_session->runner()->run<std::vector<core::PlannedLayer>>(
        tr("Load plan %1").arg(QFileInfo(path).fileName()), QString(),
        [model, source](core::Progress &) { return core::Plan::load(source).resolve(*model); },
        [this, path, model](std::shared_ptr<const std::vector<core::PlannedLayer>> planned) {
            if (model != m_session->model())
                return;
            std::vector<PlanModel::Row> rows = m_model->rows();
            for (PlanModel::Row &r : rows)
                for (const core::PlannedLayer &l : *planned)
                    if (l.name == r.name) {
                        r.quantize = l.quantize;
                        if (l.quantize)
                            r.config = l.config;
                    }
            m_model->setRows(rows, tr("Load plan %1").arg(QFileInfo(path).fileName()));
            Q_EMIT message(tr("Loaded plan %1").arg(path));
        },
        [this](const QString &error) { QMessageBox::warning(this, tr("Could not load plan"), error); });
}

} // namespace qs::ui
