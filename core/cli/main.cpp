// nodeplane: converge a GPU host to the desired state in YAML files.
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <new>
#include <stdexcept>

#include "context.hpp"
#include "nodeplane/text.hpp"

using namespace nodeplane;

namespace {

// For the CLI tests of the barrier below: a throw from inside a command, on request.
void throwIfAskedByATest() {
  const char* what = std::getenv("NODEPLANE_TEST_THROW");
  if (!what) return;
  if (std::string_view(what) == "bad_alloc") throw std::bad_alloc();
  throw std::runtime_error(what);
}

// %* in a log pattern: the message with control characters escaped, so a name or value from a
// file or the host cannot forge a log line or drive the terminal.
class EscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string text = printable(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

void setLogPattern(const std::string& pattern) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessage>('*').set_pattern(pattern);
  spdlog::set_formatter(std::move(formatter));
}

int runCommand(int argc, char** argv) {
  CLI::App app{
      "nodeplane: converge a GPU host to the desired state written in YAML files, through the\n"
      "backend plugins it loads (`nodeplane plugins` lists their kinds).",
      "nodeplane"};
  app.set_version_flag("--version", NODEPLANE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  cli::GlobalOptions g;
  app.add_option("--config", g.config, "agent config (default /etc/nodeplane/agent.yaml)");
  app.add_option("--state-dir", g.stateDir, "state directory (default /var/lib/nodeplane)");
  app.add_option("--plugin-dir", g.pluginDir,
                 "plugin directory (default: plugins/ beside the binary, else the install dir)");
  app.add_option("--sysfs-root", g.sysfsRoot, "directory that stands for /sys");
  app.add_option("--dev-root", g.devRoot,
                 "directory that stands for /dev (VFIO nodes: who has a VF or vGPU open)");
  app.add_option("--proc-root", g.procRoot,
                 "directory that stands for /proc (the NVIDIA driver's GPU information)");
  app.add_option("--log-level", g.logLevel, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--output,-o", g.output, "text or json")->check(CLI::IsMember({"text", "json"}));

  std::vector<std::string> files;
  bool noPrune = false;
  bool allowEmpty = false;
  std::string planFile, kind;

  auto* diff = app.add_subcommand(
      "diff", "Preview: exit 0 in sync, 2 changes pending, 1 error (nothing is changed).");
  diff->add_option("-f,--filename", files, "desired-state files or directories")->required();
  diff->add_flag("--no-prune", noPrune, "do not show deletes of owned objects missing from -f");

  auto* apply = app.add_subcommand("apply",
                                   "Converge the host to the desired state; exit 0 "
                                   "converged, 1 error.");
  apply->add_option("-f,--filename", files, "desired-state files or directories");
  apply->add_flag("--no-prune", noPrune, "keep owned objects that are missing from -f");
  apply->add_flag("--allow-empty", allowEmpty,
                  "let sources with no resource for this node delete everything nodeplane owns");
  apply->add_option(
      "--plan", planFile,
      "apply a plan saved by `diff --output json`; refused if the host changed since (with -f: "
      "the desired files it was made from, which fill in its sensitive values)");

  auto* run = app.add_subcommand(
      "run",
      "Daemon: watch the directory and the host, reconcile on every change and resync "
      "periodically; sd_notify when under systemd.");
  run->add_option("-f,--filename", files, "desired-state directory (or files)")->required();
  run->add_flag("--no-prune", noPrune, "keep owned objects that are missing from -f");

  auto* validate = app.add_subcommand(
      "validate", "Check desired-state files; exit 0 valid, 1 invalid, every error listed.");
  validate->add_option("-f,--filename", files, "desired-state files or directories")->required();

  auto* check = app.add_subcommand(
      "check",
      "Host readiness: what each plugin needs (net: netlink), systemd bus, KVM, IOMMU, VFIO, GPUs "
      "and IOMMU groups.");
  auto* status =
      app.add_subcommand("status",
                         "Last reconcile result per resource, from the state store, and what each "
                         "owned object is doing now (a VM's unit and guest state).");
  auto* exportCmd = app.add_subcommand(
      "export",
      "Observed state as desired-state YAML that `apply` accepts unchanged; an object it cannot "
      "write so is named on stderr and the exit code is 1.");
  exportCmd->add_option("--kind", kind, "only this kind (e.g. Bridge)");
  auto* plugins = app.add_subcommand("plugins", "Loaded plugins and the kinds they serve.");

  // Usage errors are errors (exit 1), not CLI11's own codes 105-109; --help and --version are 0.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "error: " + printable(e.what()) + "\nRun with --help for more information.\n";
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == static_cast<int>(CLI::ExitCodes::Success) ? cli::kOk : cli::kError;
  }

  auto logger = spdlog::stderr_color_mt("nodeplane");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(
      (run->parsed() && app.get_option("--log-level")->count() == 0) ? "info" : g.logLevel));
  setLogPattern(run->parsed() ? "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %*" : "%^%l%$: %*");

  throwIfAskedByATest();
  auto ctx = cli::Context::make(g);
  if (!ctx) {
    std::cerr << "error: " << ctx.error().str() << "\n";
    return cli::kError;
  }
  if (diff->parsed()) return cli::cmdDiff(*ctx, files, !noPrune);
  if (apply->parsed()) {
    if (files.empty() && planFile.empty()) {
      std::cerr << "error: apply needs -f PATH... or --plan FILE\n";
      return cli::kError;
    }
    return cli::cmdApply(*ctx, files, !noPrune, planFile, allowEmpty);
  }
  if (run->parsed()) return cli::cmdRun(*ctx, files, !noPrune);
  if (validate->parsed()) return cli::cmdValidate(*ctx, files);
  if (check->parsed()) return cli::cmdCheck(*ctx);
  if (status->parsed()) return cli::cmdStatus(*ctx);
  if (exportCmd->parsed()) return cli::cmdExport(*ctx, kind);
  if (plugins->parsed()) return cli::cmdPlugins(*ctx);
  return cli::kError;
}

}  // namespace

// The barrier: whatever a command throws (a bad_alloc, a library's exception) is an error message
// and exit 1, never std::terminate.
int main(int argc, char** argv) {
  try {
    return runCommand(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << printable(e.what()) << "\n";
  } catch (...) {
    std::cerr << "error: unknown exception\n";
  }
  return cli::kError;
}
