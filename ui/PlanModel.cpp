#include "PlanModel.h"

#include <QColor>
#include <QUndoCommand>
#include <QUndoStack>

#include <map>
#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "model/Model.h"
#include "quant/Plan.h"

namespace qs::ui {

namespace {

class SetRowsCommand : public QUndoCommand
{
public:
    SetRowsCommand(PlanModel *model, std::vector<int> indices, std::vector<PlanModel::Row> before,
                   std::vector<PlanModel::Row> after, const QString &text)
        : m_model(model), m_indices(std::move(indices)), m_before(std::move(before)), m_after(std::move(after))
    {
        setText(text);
    }
    void redo() override { m_model->applyRows(m_indices, m_after); }
    void undo() override { m_model->applyRows(m_indices, m_before); }

private:
    PlanModel *m_model;
    std::vector<int> m_indices;
    std::vector<PlanModel::Row> m_before;
    std::vector<PlanModel::Row> m_after;
};

QString paramSummary(const core::MethodConfig &c)
{
    QStringList parts;
    for (const core::ParamSpec &p : c.info().params) {
        if (p.name == "bits" || p.name == "group_size" || p.name == "symmetric")
            continue;
        const auto it = c.values().find(p.name);
        if (it == c.values().end() || it->second == p.defaultValue)
            continue;
        QString v;
        if (const auto *i = std::get_if<int64_t>(&it->second))
            v = QString::number(*i);
        else if (const auto *d = std::get_if<double>(&it->second))
            v = QString::number(*d);
        else if (const auto *b = std::get_if<bool>(&it->second))
            v = *b ? QStringLiteral("on") : QStringLiteral("off");
        else
            v = QString::fromStdString(std::get<std::string>(it->second));
        parts << QStringLiteral("%1=%2").arg(QString::fromStdString(p.name), v);
    }
    return parts.join(QStringLiteral(", "));
}

} // namespace

bool globMatch(const QString &pattern, const QString &name)
{
    // The plan file's own matching rules (core), so the GUI and the CLI agree on what a rule selects.
    try {
        return core::NamePattern(pattern.toStdString()).matches(name.toStdString());
    } catch (const core::Error &) {
        return false; // an invalid "re:" pattern matches nothing
    }
}

PlanModel::PlanModel(QUndoStack *undoStack, QObject *parent) : QAbstractTableModel(parent), m_undo(undoStack) {}

void PlanModel::setModel(const std::shared_ptr<const core::Model> &model, const core::MethodConfig &defaultConfig)
{
    beginResetModel();
    m_rows.clear();
    if (model) {
        for (size_t i = 0; i < model->tensors.size(); ++i) {
            const core::Tensor &t = model->tensors[i];
            if (!core::isLinearRole(t.role) || t.role == core::TensorRole::LmHead)
                continue;
            Row r;
            r.tensorIndex = int(i);
            r.name = t.name;
            r.config = defaultConfig;
            m_rows.push_back(r);
        }
    }
    endResetModel();
    m_undo->clear();
    Q_EMIT planChanged();
}

int PlanModel::rowCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : int(m_rows.size()); }
int PlanModel::columnCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant PlanModel::data(const QModelIndex &index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row &r = m_rows[size_t(index.row())];
    const core::MethodConfig &c = r.config;
    const core::MethodInfo &info = c.info();
    if (role == TensorIndexRole)
        return r.tensorIndex;
    if (role == ChoicesRole) {
        QStringList choices;
        if (index.column() == MethodColumn)
            for (const core::MethodInfo &m : core::quantMethods())
                choices << QString::fromStdString(m.name);
        else if (index.column() == BitsColumn)
            for (int b : info.supportedBits)
                choices << QString::number(b);
        else if (index.column() == GroupColumn)
            choices = {QStringLiteral("-1"), QStringLiteral("32"), QStringLiteral("64"), QStringLiteral("128"), QStringLiteral("256")};
        return choices;
    }
    if (index.column() == QuantizeColumn && role == Qt::CheckStateRole)
        return r.quantize ? Qt::Checked : Qt::Unchecked;
    if (index.column() == SymmetricColumn && role == Qt::CheckStateRole && info.param("symmetric"))
        return c.getBool("symmetric") ? Qt::Checked : Qt::Unchecked;
    if (role == Qt::ForegroundRole && !r.quantize && index.column() != LayerColumn)
        return QColor(Qt::gray);
    const bool display = role == Qt::DisplayRole || role == Qt::EditRole;
    if (!display && role != SortRole)
        return {};
    switch (index.column()) {
    case LayerColumn: return role == SortRole ? QVariant(index.row()) : QVariant(QString::fromStdString(r.name));
    case QuantizeColumn: return role == SortRole ? QVariant(r.quantize) : QVariant();
    case MethodColumn:
        return role == Qt::DisplayRole ? QString::fromStdString(info.displayName) : QString::fromStdString(c.method());
    case BitsColumn: return qlonglong(c.getInt("bits"));
    case GroupColumn: {
        const qlonglong g = c.getInt("group_size");
        if (role == Qt::DisplayRole)
            return g < 0 ? tr("per channel") : QString::number(g);
        return g;
    }
    case SymmetricColumn: return info.param("symmetric") ? QVariant() : QVariant(tr("n/a"));
    case DetailsColumn: return paramSummary(c);
    default: return {};
    }
}

QVariant PlanModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case LayerColumn: return tr("Layer");
    case QuantizeColumn: return tr("Quantize");
    case MethodColumn: return tr("Method");
    case BitsColumn: return tr("Bits");
    case GroupColumn: return tr("Group");
    case SymmetricColumn: return tr("Sym.");
    case DetailsColumn: return tr("Parameters");
    default: return {};
    }
}

Qt::ItemFlags PlanModel::flags(const QModelIndex &index) const
{
    Qt::ItemFlags f = QAbstractTableModel::flags(index);
    if (!index.isValid())
        return f;
    switch (index.column()) {
    case QuantizeColumn: return f | Qt::ItemIsUserCheckable;
    case SymmetricColumn:
        return m_rows[size_t(index.row())].config.info().param("symmetric") ? (f | Qt::ItemIsUserCheckable) : f;
    case MethodColumn:
    case BitsColumn:
    case GroupColumn: return f | Qt::ItemIsEditable;
    default: return f;
    }
}

bool PlanModel::setData(const QModelIndex &index, const QVariant &value, int role)
{
    if (!index.isValid())
        return false;
    if (role == Qt::CheckStateRole)
        return setDataForRows({index.row()}, index.column(), value.toInt() == Qt::Checked);
    if (role != Qt::EditRole)
        return false;
    return setDataForRows({index.row()}, index.column(), value);
}

bool PlanModel::changedRow(const Row &before, int column, const QVariant &value, Row &after)
{
    after = before;
    try {
        switch (column) {
        case QuantizeColumn: after.quantize = value.toBool(); break;
        case MethodColumn: {
            const std::string method = value.toString().toStdString();
            if (method == before.config.method())
                return true;
            core::MethodConfig c = core::MethodConfig::defaults(method);
            // Keep bits, group size and symmetry where the new method accepts them.
            for (const char *key : {"bits", "group_size", "symmetric"}) {
                if (!c.info().param(key) || !before.config.info().param(key))
                    continue;
                try {
                    core::MethodConfig trial = c;
                    trial.set(key, before.config.values().at(key));
                    trial.validate();
                    c = trial;
                } catch (const core::Error &) {
                }
            }
            after.config = c;
            break;
        }
        case BitsColumn: after.config.set("bits", int64_t(value.toLongLong())); break;
        case GroupColumn: after.config.set("group_size", int64_t(value.toLongLong())); break;
        case SymmetricColumn:
            if (!before.config.info().param("symmetric"))
                return true;
            after.config.set("symmetric", value.toBool());
            break;
        default: return false;
        }
        after.config.validate(before.name);
    } catch (const core::Error &e) {
        m_lastError = QString::fromUtf8(e.what());
        return false;
    }
    return true;
}

bool PlanModel::setDataForRows(const QList<int> &rows, int column, const QVariant &value)
{
    std::vector<int> indices;
    std::vector<Row> before, after;
    for (int row : rows) {
        if (row < 0 || row >= int(m_rows.size()))
            continue;
        Row changed;
        if (!changedRow(m_rows[size_t(row)], column, value, changed))
            return false;
        if (changed == m_rows[size_t(row)])
            continue;
        indices.push_back(row);
        before.push_back(m_rows[size_t(row)]);
        after.push_back(changed);
    }
    if (indices.empty())
        return true;
    const QString what = headerData(column, Qt::Horizontal, Qt::DisplayRole).toString();
    const QString text = indices.size() == 1
                             ? tr("Set %1 of %2").arg(what, QString::fromStdString(before.front().name))
                             : tr("Set %1 of %2 layers").arg(what).arg(indices.size());
    m_undo->push(new SetRowsCommand(this, indices, before, after, text));
    return true;
}

int PlanModel::applyRule(const QString &pattern, const core::MethodConfig &config, bool quantize)
{
    std::vector<int> indices;
    std::vector<Row> before, after;
    for (size_t i = 0; i < m_rows.size(); ++i) {
        if (!globMatch(pattern, QString::fromStdString(m_rows[i].name)))
            continue;
        Row r = m_rows[i];
        r.config = config;
        r.quantize = quantize;
        if (r == m_rows[i])
            continue;
        indices.push_back(int(i));
        before.push_back(m_rows[i]);
        after.push_back(r);
    }
    if (!indices.empty())
        m_undo->push(new SetRowsCommand(this, indices, before, after,
                                        tr("Rule %1 \u2192 %2 (%3 layers)")
                                            .arg(pattern, QString::fromStdString(config.info().displayName))
                                            .arg(indices.size())));
    return int(indices.size());
}

void PlanModel::setRows(const std::vector<Row> &rows, const QString &undoText)
{
    std::vector<int> indices;
    std::vector<Row> before, after;
    for (size_t i = 0; i < rows.size() && i < m_rows.size(); ++i) {
        if (rows[i] == m_rows[i])
            continue;
        indices.push_back(int(i));
        before.push_back(m_rows[i]);
        after.push_back(rows[i]);
    }
    if (!indices.empty())
        m_undo->push(new SetRowsCommand(this, indices, before, after, undoText));
}

void PlanModel::applyRows(const std::vector<int> &indices, const std::vector<Row> &rows)
{
    for (size_t k = 0; k < indices.size(); ++k) {
        m_rows[size_t(indices[k])] = rows[k];
        Q_EMIT dataChanged(index(indices[k], 0), index(indices[k], ColumnCount - 1));
    }
    Q_EMIT planChanged();
}

nlohmann::json PlanModel::toPlanJson() const
{
    nlohmann::json plan;
    // The most common config among quantized layers becomes the default.
    std::map<std::string, int> counts;
    for (const Row &r : m_rows)
        if (r.quantize)
            ++counts[r.config.toJson().dump()];
    std::string common;
    int best = -1;
    for (const auto &[k, n] : counts)
        if (n > best) {
            best = n;
            common = k;
        }
    plan["default"] = common.empty() ? core::MethodConfig::defaults("rtn").toJson() : nlohmann::json::parse(common);
    nlohmann::json rules = nlohmann::json::array();
    nlohmann::json skip = nlohmann::json::array({"lm_head", "model.embed_tokens"});
    for (const Row &r : m_rows) {
        if (!r.quantize) {
            skip.push_back(r.name);
            continue;
        }
        const nlohmann::json c = r.config.toJson();
        if (c.dump() == common)
            continue;
        nlohmann::json rule = c;
        rule["match"] = r.name;
        rules.push_back(rule);
    }
    plan["rules"] = rules;
    plan["skip"] = skip;
    return plan;
}

} // namespace qs::ui
