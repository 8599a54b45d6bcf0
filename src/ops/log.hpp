// The library's logger. Every log line in src/ goes through ops::logger() as
// "event=NAME key=value key=\"quoted value\"", never through spdlog's default
// logger (which writes to stdout and belongs to the application). Where the
// lines go and how they look is set through conduit::configure_logging
// (include/conduit/log.hpp); the default is text on stderr at level info.
#pragma once
#include <spdlog/logger.h>

namespace conduit::ops {

// Never null; safe to call from any thread, before or after configuration.
spdlog::logger& logger() noexcept;

}  // namespace conduit::ops
