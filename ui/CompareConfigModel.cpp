#include "CompareConfigModel.h"

#include "common/Error.h"
#include "quant/LayerCompare.h"

namespace qs::ui {

namespace {

core::MethodConfig make(const char *method, int bits, int group)
{
    core::MethodConfig c = core::MethodConfig::defaults(method);
    c.set("bits", int64_t(bits));
    c.set("group_size", int64_t(group));
    return c;
}

// Group sizes offered in the editor; each is shown only when the method's validation accepts it.
constexpr int kGroupChoices[] = { -1, 0, 32, 64, 128, 256 };

bool accepts(const core::MethodConfig &c, const char *key, const core::ParamValue &v)
{
    try {
        core::MethodConfig trial = c;
        trial.set(key, v);
        trial.validate();
        return true;
    } catch (const core::Error &) {
        return false;
    }
}

QString groupLabel(int g)
{
    if (g < 0)
        return CompareConfigModel::tr("per channel");
    if (g == 0)
        return CompareConfigModel::tr("per tensor");
    return QString::number(g);
}

QString details(const core::MethodConfig &c)
{
    // The label's bracketed part: parameters that differ from the method's defaults.
    const std::string label = core::methodConfigLabel(c);
    const auto open = label.find(" (");
    return open == std::string::npos ? QString() : QString::fromStdString(label.substr(open + 2, label.size() - open - 3));
}

} // namespace

CompareConfigModel::CompareConfigModel(QObject *parent) : QAbstractTableModel(parent), m_configs(defaultConfigs()) {}

std::vector<core::MethodConfig> CompareConfigModel::defaultConfigs()
{
    return {make("rtn", 4, 128), make("gptq", 4, 128), make("awq", 4, 128), make("rtn", 8, -1)};
}

int CompareConfigModel::rowCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : int(m_configs.size()); }
int CompareConfigModel::columnCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant CompareConfigModel::data(const QModelIndex &index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const core::MethodConfig &c = m_configs[size_t(index.row())];
    const core::MethodInfo &info = c.info();
    if (role == ChoicesRole || role == ChoiceLabelsRole) {
        QStringList values, labels;
        switch (index.column()) {
        case MethodColumn:
            for (const core::MethodInfo &m : core::quantMethods())
                if (core::layerCompareSupports(m.name)) {
                    values << QString::fromStdString(m.name);
                    labels << QString::fromStdString(m.displayName);
                }
            break;
        case BitsColumn:
            for (int b : info.supportedBits)
                if (accepts(c, "bits", int64_t(b))) {
                    values << QString::number(b);
                    labels << QString::number(b);
                }
            break;
        case GroupColumn:
            for (int g : kGroupChoices)
                if (accepts(c, "group_size", int64_t(g))) {
                    values << QString::number(g);
                    labels << groupLabel(g);
                }
            break;
        default: break;
        }
        return role == ChoicesRole ? values : labels;
    }
    if (index.column() == SymmetricColumn && role == Qt::CheckStateRole && info.param("symmetric"))
        return c.getBool("symmetric") ? Qt::Checked : Qt::Unchecked;
    if (role == Qt::ToolTipRole) {
        if (index.column() == MethodColumn)
            return QString::fromStdString(info.description);
        if (const core::ParamSpec *p = info.param(index.column() == BitsColumn ? "bits"
                                                  : index.column() == GroupColumn ? "group_size"
                                                  : index.column() == SymmetricColumn ? "symmetric"
                                                                                      : ""))
            return QString::fromStdString(p->help);
        return {};
    }
    if (role != Qt::DisplayRole && role != Qt::EditRole)
        return {};
    switch (index.column()) {
    case MethodColumn: return role == Qt::DisplayRole ? QString::fromStdString(info.displayName) : QString::fromStdString(c.method());
    case BitsColumn: return qlonglong(c.getInt("bits"));
    case GroupColumn: {
        const int g = int(c.getInt("group_size"));
        return role == Qt::DisplayRole ? QVariant(groupLabel(g)) : QVariant(g);
    }
    case SymmetricColumn: return info.param("symmetric") ? QVariant() : QVariant(tr("n/a"));
    case DetailsColumn: return details(c);
    default: return {};
    }
}

QVariant CompareConfigModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case MethodColumn: return tr("Method");
    case BitsColumn: return tr("Bits");
    case GroupColumn: return tr("Group");
    case SymmetricColumn: return tr("Sym.");
    case DetailsColumn: return tr("Other parameters");
    default: return {};
    }
}

Qt::ItemFlags CompareConfigModel::flags(const QModelIndex &index) const
{
    Qt::ItemFlags f = QAbstractTableModel::flags(index);
    if (!index.isValid())
        return f;
    switch (index.column()) {
    case MethodColumn:
    case BitsColumn:
    case GroupColumn: return f | Qt::ItemIsEditable;
    case SymmetricColumn:
        return m_configs[size_t(index.row())].info().param("symmetric") ? (f | Qt::ItemIsUserCheckable) : f;
    default: return f;
    }
}

bool CompareConfigModel::setData(const QModelIndex &index, const QVariant &value, int role)
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return false;
    const core::MethodConfig &before = m_configs[size_t(index.row())];
    core::MethodConfig after = before;
    try {
        if (index.column() == SymmetricColumn && role == Qt::CheckStateRole) {
            if (!before.info().param("symmetric"))
                return false;
            after.set("symmetric", value.toInt() == Qt::Checked);
        } else if (role != Qt::EditRole) {
            return false;
        } else if (index.column() == MethodColumn) {
            const std::string method = value.toString().toStdString();
            if (!core::layerCompareSupports(method))
                throw core::Error("method '" + method + "' cannot be compared on one layer");
            if (method == before.method())
                return true;
            after = core::MethodConfig::defaults(method);
            for (const char *key : {"bits", "group_size", "symmetric"})
                if (after.info().param(key) && before.info().param(key) && accepts(after, key, before.values().at(key)))
                    after.set(key, before.values().at(key));
        } else if (index.column() == BitsColumn) {
            after.set("bits", int64_t(value.toLongLong()));
        } else if (index.column() == GroupColumn) {
            after.set("group_size", int64_t(value.toLongLong()));
        } else {
            return false;
        }
        after.validate(core::methodConfigLabel(after));
    } catch (const core::Error &e) {
        m_lastError = QString::fromUtf8(e.what());
        return false;
    }
    if (after == before)
        return true;
    m_configs[size_t(index.row())] = after;
    Q_EMIT dataChanged(this->index(index.row(), 0), this->index(index.row(), ColumnCount - 1));
    Q_EMIT configsChanged();
    return true;
}

bool CompareConfigModel::removeRows(int row, int count, const QModelIndex &parent)
{
    if (parent.isValid() || row < 0 || count <= 0 || row + count > int(m_configs.size()))
        return false;
    beginRemoveRows(parent, row, row + count - 1);
    m_configs.erase(m_configs.begin() + row, m_configs.begin() + row + count);
    endRemoveRows();
    Q_EMIT configsChanged();
    return true;
}

void CompareConfigModel::addConfig(const core::MethodConfig &config)
{
    beginInsertRows({}, int(m_configs.size()), int(m_configs.size()));
    m_configs.push_back(config);
    endInsertRows();
    Q_EMIT configsChanged();
}

void CompareConfigModel::setConfigs(const std::vector<core::MethodConfig> &configs)
{
    beginResetModel();
    m_configs = configs;
    endResetModel();
    Q_EMIT configsChanged();
}

} // namespace qs::ui
