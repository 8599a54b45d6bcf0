// Shared by the in-process conduit.v1 tests: a server running
// conduit::ChannelService, and reading replies and pushes off a RawClient.
#pragma once
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "conduit/pubsub.hpp"
#include "conduit/server.hpp"
#include "raw_client.hpp"

namespace conduit_test {

// A conduit.v1 server on `loops` loops (127.0.0.1, a free port), started.
struct V1Service {
  V1Service() : V1Service(conduit::ChannelServiceOptions()) {}
  explicit V1Service(conduit::ChannelServiceOptions opts, unsigned loops = 2) {
    conduit::ServerHandlers h;
    h.on_upgrade = [this](const conduit::UpgradeInfo& u) { return service->on_upgrade(u); };
    h.on_open = [this](conduit::Session& s) { service->on_open(s); };
    h.on_message = [this](conduit::Session& s, std::string_view d, conduit::MessageType t) {
      service->on_message(s, d, t);
    };
    server = std::make_unique<conduit::Server>(test_options(loops), h);
    service = std::make_unique<conduit::ChannelService>(*server, std::move(opts));
    server->start();
  }
  ~V1Service() {
    server->stop();
    server->wait();
  }
  std::unique_ptr<conduit::Server> server;
  std::unique_ptr<conduit::ChannelService> service;
};

// The number after "key": in text (0 when absent).
inline std::uint64_t number_after(const std::string& text, const std::string& key) {
  const auto pos = text.find("\"" + key + "\":");
  if (pos == std::string::npos) return 0;
  return std::stoull(text.substr(pos + key.size() + 3));
}

// The string after "key": in text ("" when absent).
inline std::string string_after(const std::string& text, const std::string& key) {
  const auto pos = text.find("\"" + key + "\":\"");
  if (pos == std::string::npos) return {};
  const auto start = pos + key.size() + 4;
  return text.substr(start, text.find('"', start) - start);
}

// Reads frames until the reply to `id`; pushes seen on the way go to `pushes`.
inline std::string reply_to(RawClient& c, std::uint64_t id, std::vector<std::string>* pushes = nullptr) {
  const std::string prefix = "{\"id\":" + std::to_string(id) + ",";
  for (;;) {
    auto f = c.next_data_or_close();
    if (f.op == conduit::wire::Opcode::Close) throw std::runtime_error("closed: " + f.payload);
    if (f.payload.rfind(prefix, 0) == 0) return f.payload;
    if (pushes) pushes->push_back(f.payload);
  }
}

// True when the publisher, having published `published` offsets, is
// `ahead` offsets in front of the slowest reader (it then waits a little): a
// reader slowed down (by a sanitizer, a loaded machine) is never closed as a
// slow consumer.
template <std::size_t N>
bool too_far_ahead(const std::array<std::atomic<std::uint64_t>, N>& progress, std::uint64_t published,
                   std::uint64_t ahead) {
  std::uint64_t slowest = ~std::uint64_t{0};
  for (auto& p : progress) slowest = std::min(slowest, p.load());
  return published >= slowest + ahead;
}

// One reader of the recovery tests: subscribes to "feed" on the port
// pick_port() gives, reads a random number (1..max_take) of live pushes,
// drops the connection and subscribes again with `since`, until it has read
// up to `total`. Throws on a reply that is not recovered, or on an offset
// that is not the one after the last (a gap or a duplicate). `progress` is
// its last offset (the publisher stays within reach of it); `resubscribes`
// counts its subscribes with since.
inline void follow_with_recovery(const std::function<std::uint16_t()>& pick_port, unsigned seed, int max_take,
                                 const std::atomic<std::uint64_t>& total, std::atomic<std::uint64_t>& progress,
                                 std::atomic<int>& resubscribes) {
  std::mt19937 rng(seed);
  std::uint64_t last = 0;
  std::string epoch;
  while (last < total.load()) {
    RawClient client(pick_port());
    std::string req = R"({"id":1,"subscribe":{"channel":"feed")";
    if (!epoch.empty()) req += R"(,"since":{"offset":)" + std::to_string(last) + R"(,"epoch":")" + epoch + "\"}";
    client.send_text(req + "}}");
    const auto r = reply_to(client, 1);
    if (epoch.empty()) {
      epoch = string_after(r, "epoch");
      last = number_after(r, "offset");
      progress.store(last);
    } else {
      resubscribes.fetch_add(1);
      if (r.find("\"recovered\":true") == std::string::npos) throw std::runtime_error("not recovered: " + r);
      // Recovered publications first, inside the result.
      const auto pubs = r.find("\"publications\"");
      std::size_t at = 0;
      while ((at = r.find("\"offset\":", at + 1)) != std::string::npos) {
        if (at < pubs) continue;  // the result's own position
        const auto off = std::stoull(r.substr(at + 9));
        if (off != last + 1)
          throw std::runtime_error("recovered offset " + std::to_string(off) + " after " + std::to_string(last));
        last = off;
        progress.store(last);
      }
    }
    // Then live pushes, for a random while.
    const int take = std::uniform_int_distribution<int>(1, max_take)(rng);
    for (int i = 0; i < take && last < total.load(); ++i) {
      auto f = client.next_data_or_close();
      const auto off = number_after(f.payload, "offset");
      if (off != last + 1) {
        throw std::runtime_error("live offset " + std::to_string(off) + " after " + std::to_string(last) + ": " +
                                 f.payload);
      }
      last = off;
      progress.store(last);
    }
  }
}

}  // namespace conduit_test
