// The HTTP API of conduit.v1 for backends, on the server's own port(s):
//
//   POST /api/publish  {"channel":"news","data":VALUE}  → 200 {"offset":N,"epoch":"E"}
//   GET  /api/channels                                 → 200 {"channels":[{"channel":"news","subscribers":3},...]}
//   GET  /api/history?channel=news&limit=10            → 200
//   {"offset":N,"epoch":"E","publications":[{"offset":N,"data":VALUE},...]}
//
// Every request needs `Authorization: apikey KEY`. With an empty key the API
// has no route at all: its paths are 404 like any unknown path, so it is
// never open by accident. Refusals are checked in this order, so that a
// caller without the key learns only that a path exists:
//   404 unknown path under /api/, 405 wrong method (Allow lists the right
//   one), 401 missing or wrong key, 413 body above max_body_bytes (answered
//   before the body is read), 400 malformed request (one-line reason),
//   503 the channels are shut down.
// Every refusal has a JSON body {"error":{"code":N,"message":"..."}}, is
// counted in conduit_http_api_refusals_total{status,reason} and logged
// (event=http_api_refused). Answers run on the loop thread that read the
// request; publish() never blocks on I/O.
//
// The channels must be of Format::conduit_v1 (history entries are pushes:
// the API answers with their data).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "conduit/pubsub.hpp"
#include "conduit/server.hpp"

namespace conduit::pubsub {

struct HttpApiOptions {
  std::string api_key;                 // "" = no routes (404)
  std::size_t max_body_bytes = 65536;  // POST bodies above this → 413
};

class HttpApi {
 public:
  // channels must outlive every request the server serves with these routes.
  HttpApi(Channels& channels, HttpApiOptions options);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // Adds the routes (none when the key is empty). Before server.start().
  void add_routes(Server& server);
  // Prometheus text of the API's counters (complete families, HELP and TYPE).
  void append_metrics(std::string& out) const;

  struct State;

 private:
  std::shared_ptr<State> state_;  // shared with the routes
};

}  // namespace conduit::pubsub
