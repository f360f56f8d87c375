// libnftables, loaded on first use: the net plugin runs in every daemon, most of which never NAT
// a bridge, and mapping the library with its dependencies (libnftnl, libmnl, libjansson, libgmp,
// libxtables) costs about 0.9 MB of RSS, a context another 0.6 MB. So the library is opened with
// dlopen() when a Bridge asks for masquerade or nodeplane's table exists (nat_table.cpp probes for
// the table over raw nfnetlink first), and each command gets a context of its own, freed after it.
// The header comes from pkg-config (libnftables), so the signatures are the library's own.
#pragma once

#include <string>

#include "nodeplane/error.hpp"

namespace nodeplane::net {

// Runs one nftables command buffer as one transaction and returns what it printed. `json`: the
// buffer is JSON (the libnftables JSON schema) and so is the output (`list` answers in JSON).
// `what` names the step in the error ("adding the masquerade rule of bridge br-vm: ...").
Result<std::string> runNft(const std::string& commands, bool json, const std::string& what);

// True once the library has been loaded in this process (for the memory test and the bench).
bool nftLibraryLoaded();

}  // namespace nodeplane::net
