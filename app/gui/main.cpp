// The GUI: builds the application context and shows the main window. Everything else lives in qs_ui.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>
#include <QTimer>

#include "MainWindow.h"
#include "common/BuildInfo.h"

int main(int argc, char **argv)
{
    // Jobs run OpenMP regions from several pool threads at once; spinning idle OpenMP workers would steal
    // the cores those jobs need. Passive waiting costs little here (set OMP_WAIT_POLICY to override).
    if (!qEnvironmentVariableIsSet("OMP_WAIT_POLICY"))
        qputenv("OMP_WAIT_POLICY", "passive");
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("QuantScope"));
    QApplication::setOrganizationName(QStringLiteral("QuantScope"));
    QApplication::setOrganizationDomain(QStringLiteral("quantscope.github.io"));
    QApplication::setApplicationVersion(QStringLiteral(QS_VERSION));
    QApplication::setDesktopFileName(QStringLiteral(QS_APP_ID));
    QApplication::setWindowIcon(QIcon(QStringLiteral(":/icons/quantscope.svg")));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("QuantScope: a workbench for quantizing large language models"));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption demo(QStringLiteral("demo"), QStringLiteral("Open the built-in synthetic demo model."));
    parser.addOption(demo);
    parser.addPositionalArgument(QStringLiteral("model"),
                                 QStringLiteral("A Hugging Face folder, a .gguf file or a llama2.c .bin to open."));
    parser.process(app);

    qs::ui::MainWindow window;
    window.show();
    const QStringList args = parser.positionalArguments();
    if (!args.isEmpty()) {
        const QString path = args.first();
        QTimer::singleShot(0, &window, [&window, path] { window.openPath(path); });
    } else if (parser.isSet(demo)) {
        QTimer::singleShot(0, &window, [&window] { window.openDemoModel(); });
    }
    return QApplication::exec();
}
