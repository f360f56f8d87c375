#include "vgpu_config.hpp"

namespace nodeplane::vgpu {

std::vector<FieldSchema> vgpuConfigSchema() {
  FieldSchema manage{"sriovManage", FieldType::kString,
                     "NVIDIA's sriov-manage (absolute path): enables a GPU's virtual functions"};
  FieldSchema smi{"nvidiaSmi", FieldType::kString,
                  "NVIDIA's nvidia-smi (a path or a name on PATH): counts the GPU instances of a "
                  "MIG GPU for MIG-backed profiles"};
  FieldSchema mixed{"mixedSize", FieldType::kStringList,
                    "GPUs (address, index or UUID) in mixed-size mode: vGPUs of different sizes "
                    "may share them"};
  FieldSchema timeout{"writeTimeoutSeconds", FieldType::kInteger,
                      "limit of each sysfs write and of each wait for the kernel (default 10)"};
  timeout.minimum = 1;
  timeout.maximum = 600;
  return {manage, smi, mixed, timeout};
}

VgpuConfig readVgpuConfig(const HostContext& host) {
  VgpuConfig c;
  c.stateDir = host.stateDir / "vgpu";
  if (!host.config.is_object() || !host.config.contains("vgpu") || !host.config["vgpu"].is_object())
    return c;
  const Json& s = host.config["vgpu"];
  if (s.contains("sriovManage") && s["sriovManage"].is_string())
    c.sriovManage = s["sriovManage"].get<std::string>();
  if (s.contains("nvidiaSmi") && s["nvidiaSmi"].is_string())
    c.nvidiaSmi = s["nvidiaSmi"].get<std::string>();
  if (s.contains("mixedSize") && s["mixedSize"].is_array())
    for (const auto& g : s["mixedSize"])
      if (g.is_string()) c.mixedSize.push_back(g.get<std::string>());
  if (s.contains("writeTimeoutSeconds") && s["writeTimeoutSeconds"].is_number_integer())
    c.writeTimeout = std::chrono::seconds(s["writeTimeoutSeconds"].get<int>());
  return c;
}

}  // namespace nodeplane::vgpu
