// The web pages conduitd serves (web.enabled): the chat at /, the dashboard at
// /dashboard, the JavaScript client at /conduit.js, their assets, and /stats,
// the JSON the dashboard polls.
//
// The files of web/ are compiled into the binary (cmake/EmbedFiles.cmake), and
// a request is answered only when its path equals one of their names byte for
// byte: the path is never decoded, joined or looked up on disk, so no request
// ("/../", "%2e%2e", "%2f", "//") can name anything else.
#pragma once
#include <span>
#include <string_view>

#include "conduit/server.hpp"

namespace conduitd {

struct EmbeddedFile {
  std::string_view path;  // relative to web/, e.g. "conduit.js"
  std::string_view content;
};

// Every file of web/, in path order (generated at build time).
std::span<const EmbeddedFile> embedded_web_files();

// Adds one exact GET route per file (and / for index.html, /dashboard for
// dashboard.html) and GET /stats to server. Before server.start().
void add_web_routes(conduit::Server& server);

// The Content-Type for a file name, from its extension.
std::string_view content_type_for(std::string_view path);

// /stats: the server's metrics (Server::metrics_text()) as JSON,
//   {"metrics":{"NAME":[{"labels":{"L":"V",...},"value":N},...],...}}
// with a value that is not a finite number (NaN, +Inf) as null.
std::string metrics_json(std::string_view prometheus_text);

}  // namespace conduitd
