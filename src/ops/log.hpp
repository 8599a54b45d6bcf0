// Logging setup for conduitd: spdlog to stderr, as text or one JSON object per
// line. Library log lines are "event=NAME key=value key=\"quoted value\""; the
// JSON format turns those pairs into fields.
#pragma once
#include <string>

namespace conduit::ops {

// level: trace|debug|info|warn|error|critical|off; format: text|json.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace conduit::ops
