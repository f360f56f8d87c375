// Docker's /events stream as an event source: a thread of its own keeps a streaming GET open
// (libcurl multi, woken by curl_multi_wakeup to stop) and queues what arrives; fd() is an eventfd
// the daemon polls. When dockerd goes away the stream ends: fd() turns readable and drain()
// reports the loss, so the daemon reopens it (with backoff) and runs a pass.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/plugin.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::docker {

class EventStream {
 public:
  EventStream();
  ~EventStream();  // close()
  // Starts streaming GET /v<apiVersion>/events?filters=<filtersJson>. Returns when the request
  // is under way (not when a first event came).
  Result<void> open(const std::string& socketPath, const std::string& apiVersion,
                    const Json& filters);
  int fd() const;
  // Every event message received since the last drain. An error when the stream has ended
  // (dockerd stopped or restarted): the caller closes and reopens.
  Result<std::vector<Json>> drain();
  // Stops the thread (at once, not at its next timeout) and closes the fd.
  void close();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The Container objects a batch of container events names (Actor.Attributes.name; a rename
// touches the old name too, Docker's "oldName" without its leading "/"); an event that names no
// container touches every Container.
Touched containerEventTouches(const std::vector<Json>& events);

}  // namespace nodeplane::docker
