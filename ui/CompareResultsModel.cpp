#include "CompareResultsModel.h"

#include <QFont>

#include <cmath>

namespace qs::ui {

QColor compareSeriesColor(int index)
{
    // Tableau 10: distinguishable, also for the common colour-vision deficiencies, and on white.
    static const QColor palette[] = {QColor(0x4e, 0x79, 0xa7), QColor(0xf2, 0x8e, 0x2b), QColor(0x59, 0xa1, 0x4f),
                                     QColor(0xe1, 0x57, 0x59), QColor(0xb0, 0x7a, 0xa1), QColor(0x76, 0xb7, 0xb2),
                                     QColor(0xed, 0xc9, 0x48), QColor(0x9c, 0x75, 0x5f), QColor(0xff, 0x9d, 0xa7),
                                     QColor(0xba, 0xb0, 0xac)};
    constexpr int n = int(sizeof palette / sizeof palette[0]);
    return palette[((index % n) + n) % n];
}

CompareResultsModel::CompareResultsModel(QObject *parent) : QAbstractTableModel(parent) {}

void CompareResultsModel::setComparison(std::shared_ptr<const core::LayerComparison> comparison)
{
    beginResetModel();
    m_comparison = std::move(comparison);
    m_best = m_comparison ? m_comparison->bestIndex() : -1;
    endResetModel();
}

int CompareResultsModel::bestRow() const { return m_best; }

int CompareResultsModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() || !m_comparison ? 0 : int(m_comparison->entries.size());
}

int CompareResultsModel::columnCount(const QModelIndex &parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant CompareResultsModel::data(const QModelIndex &index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const core::LayerCompareEntry &e = m_comparison->entries[size_t(index.row())];
    const core::LayerResult &m = e.metrics;
    const bool ok = e.error.empty();
    const bool best = index.row() == m_best;
    switch (role) {
    case BestRole: return best;
    case Qt::DecorationRole: return index.column() == ConfigColumn ? QVariant(compareSeriesColor(index.row())) : QVariant();
    case Qt::FontRole:
        if (best) {
            QFont f;
            f.setBold(true);
            return f;
        }
        return {};
    case Qt::BackgroundRole: return best ? QVariant(QColor(0xdf, 0xf3, 0xdc)) : QVariant();
    case Qt::ForegroundRole: return ok ? QVariant() : QVariant(QColor(0xb0, 0x20, 0x20));
    case Qt::TextAlignmentRole:
        return index.column() == ConfigColumn || index.column() == NoteColumn ? QVariant()
                                                                              : QVariant(int(Qt::AlignRight | Qt::AlignVCenter));
    case Qt::ToolTipRole:
        if (!ok)
            return QString::fromStdString(e.error);
        if (index.column() == RelErrorColumn)
            return tr("\u2016WX \u2212 \u0174X\u2016 / \u2016WX\u2016 on %L1 calibration tokens (float inputs)")
                .arg(qlonglong(m_comparison->calibrationTokens));
        if (index.column() == NoteColumn || index.column() == ConfigColumn)
            return QString::fromStdString(m.note.empty() ? e.label : e.label + "\n" + m.note);
        return {};
    case SortRole:
    case Qt::DisplayRole: break;
    default: return {};
    }
    const bool display = role == Qt::DisplayRole;
    if (index.column() == ConfigColumn)
        return QString::fromStdString(e.label) + (display && best ? tr("  \u2605 best") : QString());
    if (!ok)
        return index.column() == NoteColumn ? QVariant(QString::fromStdString(e.error)) : QVariant();
    switch (index.column()) {
    case RelErrorColumn: return display ? QVariant(QString::number(m.relOutputError, 'f', 5)) : QVariant(m.relOutputError);
    case WeightMseColumn: return display ? QVariant(QString::number(m.weightMse, 'e', 3)) : QVariant(m.weightMse);
    case SqnrColumn:
        if (!std::isfinite(m.sqnrDb))
            return display ? QVariant(tr("exact")) : QVariant(1e300);
        return display ? QVariant(QString::number(m.sqnrDb, 'f', 2)) : QVariant(m.sqnrDb);
    case GptqLossColumn:
        if (!m.gptqLoss)
            return display ? QVariant(QStringLiteral("\u2014")) : QVariant();
        return display ? QVariant(QString::number(*m.gptqLoss, 'g', 4)) : QVariant(*m.gptqLoss);
    case BpwColumn: return display ? QVariant(QString::number(m.bitsPerWeight, 'f', 3)) : QVariant(m.bitsPerWeight);
    case SecondsColumn: return display ? QVariant(QString::number(m.seconds, 'f', 3)) : QVariant(m.seconds);
    case NoteColumn: {
        QString note = QString::fromStdString(m.note);
        if (m.activationBits > 0)
            note = (note.isEmpty() ? QString() : note + QStringLiteral("; "))
                   + tr("W%1A%2 (activations not simulated here)").arg(m.bits).arg(m.activationBits);
        return note;
    }
    default: return {};
    }
}

QVariant CompareResultsModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal)
        return {};
    if (role == Qt::ToolTipRole) {
        switch (section) {
        case RelErrorColumn: return tr("Relative output error \u2016WX \u2212 \u0174X\u2016/\u2016WX\u2016 on the calibration inputs (lower is better; best marked)");
        case WeightMseColumn: return tr("Mean squared weight error (effective weights against the original)");
        case SqnrColumn: return tr("Signal-to-quantization-noise ratio of the weights, 10\u00b7log10(\u2016W\u2016\u00b2/\u2016W \u2212 \u0174\u2016\u00b2)");
        case GptqLossColumn: return tr("GPTQ's objective \u03a3\u00bde\u00b2 (GPTQ only)");
        case BpwColumn: return tr("Storage bits per weight including scales and zero points");
        default: return {};
        }
    }
    if (role != Qt::DisplayRole)
        return {};
    switch (section) {
    case ConfigColumn: return tr("Configuration");
    case RelErrorColumn: return tr("Rel. output error");
    case WeightMseColumn: return tr("Weight MSE");
    case SqnrColumn: return tr("SQNR (dB)");
    case GptqLossColumn: return tr("GPTQ loss");
    case BpwColumn: return tr("Bits/weight");
    case SecondsColumn: return tr("Time (s)");
    case NoteColumn: return tr("Note");
    default: return {};
    }
}

} // namespace qs::ui
