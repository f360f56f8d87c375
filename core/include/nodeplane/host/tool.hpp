// Running host tools (qemu-img, genisoimage, sriov-manage, nvidia-smi): argv only, no shell,
// output collected, a deadline after which the tool is killed (by its PID) and reaped. Shared by
// the plugins that run them.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"

namespace nodeplane::host {

// `name` as the tool to run: an absolute path as is (it must be an executable file), a bare name
// searched on PATH. An error names what was looked for and where.
Result<std::filesystem::path> findProgram(const std::string& name);

struct ToolOutput {
  int exitCode = -1;  // the exit code, or 128 + the signal
  std::string out;    // stdout
  std::string err;    // stderr
};

// Runs argv (argv[0] a name or path, resolved by findProgram) with stdin from /dev/null and
// waits up to `timeout`. A tool still running then is killed: a retryable error. The tool's exit
// code is in the result; runToolOk() makes a non-zero exit an error quoting its stderr.
Result<ToolOutput> runTool(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);
Result<ToolOutput> runToolOk(const std::vector<std::string>& argv,
                             std::chrono::milliseconds timeout);

}  // namespace nodeplane::host
