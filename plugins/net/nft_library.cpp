#include "nft_library.hpp"

#include <dlfcn.h>
#include <nftables/libnftables.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace nodeplane::net {
namespace {

// The soname of Debian 12's libnftables1 (libnftables.so -> libnftables.so.1.1.0).
constexpr const char* kSoname = "libnftables.so.1";

struct Api {
  decltype(&::nft_ctx_new) ctxNew = nullptr;
  decltype(&::nft_ctx_free) ctxFree = nullptr;
  decltype(&::nft_ctx_output_set_flags) setOutputFlags = nullptr;
  decltype(&::nft_ctx_buffer_output) bufferOutput = nullptr;
  decltype(&::nft_ctx_buffer_error) bufferError = nullptr;
  decltype(&::nft_ctx_get_output_buffer) outputBuffer = nullptr;
  decltype(&::nft_ctx_get_error_buffer) errorBuffer = nullptr;
  decltype(&::nft_run_cmd_from_buffer) runCommands = nullptr;
};

std::atomic<bool> loaded{false};

template <class F>
bool bind(void* handle, const char* name, F& out, std::string& missing) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  if (!out) missing = name;
  return out != nullptr;
}

// Loaded once, never unloaded (libnftables keeps global state; the plugin lives as long as the
// process does in practice).
Result<const Api*> api() {
  static std::once_flag once;
  static Api table;
  static std::string problem;
  std::call_once(once, [] {
    void* h = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      problem = std::string("cannot load ") + kSoname + ": " + (e ? e : "unknown error") +
                " (Debian: apt-get install libnftables1)";
      return;
    }
    std::string missing;
    if (!bind(h, "nft_ctx_new", table.ctxNew, missing) ||
        !bind(h, "nft_ctx_free", table.ctxFree, missing) ||
        !bind(h, "nft_ctx_output_set_flags", table.setOutputFlags, missing) ||
        !bind(h, "nft_ctx_buffer_output", table.bufferOutput, missing) ||
        !bind(h, "nft_ctx_buffer_error", table.bufferError, missing) ||
        !bind(h, "nft_ctx_get_output_buffer", table.outputBuffer, missing) ||
        !bind(h, "nft_ctx_get_error_buffer", table.errorBuffer, missing) ||
        !bind(h, "nft_run_cmd_from_buffer", table.runCommands, missing)) {
      problem = std::string(kSoname) + " lacks the symbol " + missing;
      dlclose(h);
      return;
    }
    loaded = true;
  });
  if (!problem.empty()) return fail(ErrorKind::kTerminal, problem);
  return &table;
}

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

bool nftLibraryLoaded() { return loaded; }

Result<std::string> runNft(const std::string& commands, bool json, const std::string& what) {
  auto a = api();
  if (!a) return fail(ErrorKind::kTerminal, what + ": " + a.error().message);
  const Api& f = **a;
  auto freeCtx = [&f](nft_ctx* c) { f.ctxFree(c); };
  std::unique_ptr<nft_ctx, decltype(freeCtx)> ctx(f.ctxNew(NFT_CTX_DEFAULT), freeCtx);
  if (!ctx) return fail(ErrorKind::kRetryable, what + ": nft_ctx_new failed");
  // With JSON output, libnftables also parses the input as JSON (falling back to the text syntax).
  if (json) f.setOutputFlags(ctx.get(), NFT_CTX_OUTPUT_JSON);
  if (f.bufferOutput(ctx.get()) != 0 || f.bufferError(ctx.get()) != 0)
    return fail(ErrorKind::kRetryable, what + ": cannot buffer libnftables output");
  if (f.runCommands(ctx.get(), commands.c_str()) != 0) {
    std::string err = trimmed(f.errorBuffer(ctx.get()));
    return fail(ErrorKind::kRetryable, what + ": " + (err.empty() ? "nftables refused it" : err));
  }
  return trimmed(f.outputBuffer(ctx.get()));
}

}  // namespace nodeplane::net
