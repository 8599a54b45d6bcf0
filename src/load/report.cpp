// Reports: the pass/fail verdict, human-readable summaries and one-line JSON
// (null for what was not measured).
#include <fmt/format.h>

#include "conduit/json_string.hpp"
#include "conduit_load/load.hpp"

namespace conduit::load {
namespace {

// A JSON string literal of s (quoted and escaped).
std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// A measured value with `decimals` digits, or null.
std::string json_number(std::optional<double> value, int decimals) {
  return value ? fmt::format("{:.{}f}", *value, decimals) : std::string("null");
}

std::string json_latency(const LatencySummary& l) {
  const auto v = [&](double x) { return json_number(l.count > 0 ? std::optional<double>(x) : std::nullopt, 2); };
  return fmt::format(R"({{"count":{},"mean_us":{},"p50_us":{},"p90_us":{},"p99_us":{},"p999_us":{},"max_us":{}}})",
                     l.count, v(l.mean_us), v(l.p50_us), v(l.p90_us), v(l.p99_us), v(l.p999_us), v(l.max_us));
}

std::string json_close_codes(const CloseCodeCounts& codes) {
  std::string out = "{";
  for (auto [code, n] : codes) out += fmt::format("{}\"{}\":{}", out.size() > 1 ? "," : "", code, n);
  return out + "}";
}

std::string text_close_codes(const CloseCodeCounts& codes) {
  if (codes.empty()) return "none";
  std::string out;
  for (auto [code, n] : codes) out += fmt::format("{}{}: {}", out.empty() ? "" : ", ", code, n);
  return out;
}

std::string text_error(LoadError error, const std::string& detail) {
  if (error == LoadError::None) return {};
  return fmt::format("error:         {}: {}\n", to_string(error), detail);
}

std::string text_latency(const LatencySummary& l, bool with_p999) {
  if (l.count == 0) return "latency (us):  n/a (nothing measured)\n";
  if (!with_p999)
    return fmt::format("latency (us):  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  max {:.1f}\n", l.p50_us, l.p90_us, l.p99_us,
                       l.max_us);
  return fmt::format("latency (us):  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f}\n", l.p50_us,
                     l.p90_us, l.p99_us, l.p999_us, l.max_us);
}

// Collects "; "-separated reasons.
struct Reasons {
  std::string text;
  template <class... Args>
  void add(fmt::format_string<Args...> format, Args&&... args) {
    if (!text.empty()) text += "; ";
    text += fmt::format(format, std::forward<Args>(args)...);
  }
};

}  // namespace

std::string_view to_string(LoadError error) {
  switch (error) {
    case LoadError::None:
      return "none";
    case LoadError::BadUrl:
      return "bad URL";
    case LoadError::BadOptions:
      return "bad options";
    case LoadError::ConnectFailed:
      return "connect failed";
    case LoadError::HandshakeFailed:
      return "handshake failed";
    case LoadError::Timeout:
      return "timeout";
    case LoadError::ResourceLimit:
      return "resource limit";
    case LoadError::WorkerFailed:
      return "worker process failed";
  }
  return "unknown";
}

std::string failure_reason(const EchoLoadReport& r) {
  Reasons why;
  if (r.error != LoadError::None) why.add("{}: {}", to_string(r.error), r.error_detail);
  if (r.messages == 0) why.add("no echo was measured");
  if (r.closed_early > 0)
    why.add("{} connections closed early (close codes {})", r.closed_early, text_close_codes(r.close_codes));
  if (r.mismatches > 0) why.add("{} mismatched echoes", r.mismatches);
  if (r.protocol_errors > 0) why.add("{} protocol errors", r.protocol_errors);
  return why.text;
}

std::string failure_reason(const FanoutLoadReport& r) {
  Reasons why;
  if (r.error != LoadError::None) why.add("{}: {}", to_string(r.error), r.error_detail);
  if (r.deliveries == 0) why.add("no delivery was measured");
  if (r.closed_early > 0)
    why.add("{} connections closed early (close codes {})", r.closed_early, text_close_codes(r.close_codes));
  if (r.gaps > 0) why.add("{} messages missing", r.gaps);
  if (r.out_of_order > 0) why.add("{} messages out of order", r.out_of_order);
  if (r.corrupt > 0) why.add("{} corrupt messages", r.corrupt);
  if (r.protocol_errors > 0) why.add("{} protocol errors", r.protocol_errors);
  if (r.publish_errors > 0) why.add("{} publish requests refused", r.publish_errors);
  return why.text;
}

std::string format_report(const EchoLoadReport& r) {
  std::string out = text_error(r.error, r.error_detail);
  out += fmt::format("connections:   {} ({} failed)\n", r.connections, r.connect_failures);
  if (r.seconds && r.messages_per_second)
    out +=
        fmt::format("messages:      {} in {:.2f} s = {:.0f} msg/s\n", r.messages, *r.seconds, *r.messages_per_second);
  else
    out += fmt::format("messages:      {} (no measured window)\n", r.messages);
  out += text_latency(r.latency, true);
  out += fmt::format("errors:        {} mismatched, {} protocol, {} closed early, {} rate misses\n", r.mismatches,
                     r.protocol_errors, r.closed_early, r.rate_misses);
  out += fmt::format("server closes: {}\n", text_close_codes(r.close_codes));
  if (r.server_cpu_seconds)
    out += fmt::format("server CPU:    {:.2f} s = {:.0f} msg per server-CPU-second\n", *r.server_cpu_seconds,
                       r.messages_per_server_cpu_second.value_or(0));
  return out;
}

std::string format_report(const FanoutLoadReport& r) {
  std::string out = text_error(r.error, r.error_detail);
  out += fmt::format("subscribers:   {} ({} failed){}\n", r.subscribers, r.connect_failures,
                     r.processes > 1 ? fmt::format(" in {} worker processes", r.processes) : std::string());
  if (r.seconds && r.deliveries_per_second)
    out += fmt::format("deliveries:    {} of {} in {:.2f} s = {:.0f} deliveries/s ({} published)\n", r.deliveries,
                       r.expected_deliveries, *r.seconds, *r.deliveries_per_second, r.messages_published);
  else
    out += fmt::format("deliveries:    {} of {} ({} published)\n", r.deliveries, r.expected_deliveries,
                       r.messages_published);
  out += text_latency(r.latency, false);
  if (r.publish_latency.count > 0)
    out += fmt::format("publish (us):  p50 {:.1f}  p99 {:.1f} (request to reply), {} refused\n",
                       r.publish_latency.p50_us, r.publish_latency.p99_us, r.publish_errors);
  out += fmt::format("order:         {} missing, {} out of order, {} corrupt, {} protocol errors, {} closed early\n",
                     r.gaps, r.out_of_order, r.corrupt, r.protocol_errors, r.closed_early);
  out += fmt::format("server closes: {}\n", text_close_codes(r.close_codes));
  if (r.server_cpu_seconds)
    out += fmt::format("server CPU:    {:.2f} s = {:.0f} deliveries per server-CPU-second\n", *r.server_cpu_seconds,
                       r.deliveries_per_server_cpu_second.value_or(0));
  return out;
}

std::string to_json(const EchoLoadReport& r) {
  return fmt::format(
      R"({{"scenario":"echo","error":"{}","error_detail":{},"connections":{},"connect_failures":{},)"
      R"("seconds":{},"messages":{},"messages_per_second":{},"bytes":{},"latency":{},"mismatches":{},)"
      R"("protocol_errors":{},"closed_early":{},"rate_misses":{},"close_codes":{},"server_cpu_seconds":{},)"
      R"("messages_per_server_cpu_second":{}}})",
      to_string(r.error), json_string(r.error_detail), r.connections, r.connect_failures, json_number(r.seconds, 4),
      r.messages, json_number(r.messages_per_second, 1), r.bytes, json_latency(r.latency), r.mismatches,
      r.protocol_errors, r.closed_early, r.rate_misses, json_close_codes(r.close_codes),
      json_number(r.server_cpu_seconds, 3), json_number(r.messages_per_server_cpu_second, 1));
}

std::string to_json(const FanoutLoadReport& r) {
  return fmt::format(
      R"({{"scenario":"fanout","error":"{}","error_detail":{},"subscribers":{},"connect_failures":{},)"
      R"("messages_published":{},"deliveries":{},"expected_deliveries":{},"seconds":{},)"
      R"("deliveries_per_second":{},"latency":{},"gaps":{},"out_of_order":{},"corrupt":{},"protocol_errors":{},)"
      R"("closed_early":{},"publisher_echoes":{},"close_codes":{},"server_cpu_seconds":{},)"
      R"("deliveries_per_server_cpu_second":{},"processes":{},"publish_latency":{},"publish_errors":{}}})",
      to_string(r.error), json_string(r.error_detail), r.subscribers, r.connect_failures, r.messages_published,
      r.deliveries, r.expected_deliveries, json_number(r.seconds, 4), json_number(r.deliveries_per_second, 1),
      json_latency(r.latency), r.gaps, r.out_of_order, r.corrupt, r.protocol_errors, r.closed_early, r.publisher_echoes,
      json_close_codes(r.close_codes), json_number(r.server_cpu_seconds, 3),
      json_number(r.deliveries_per_server_cpu_second, 1), r.processes, json_latency(r.publish_latency),
      r.publish_errors);
}

std::string to_json(const IdleLoadReport& r) {
  return fmt::format(R"({{"scenario":"idle","error":"{}","error_detail":{},"connections":{},"connect_failures":{},)"
                     R"("connect_seconds":{:.3f},"close_codes":{}}})",
                     to_string(r.error), json_string(r.error_detail), r.connections, r.connect_failures,
                     r.connect_seconds, json_close_codes(r.close_codes));
}

std::string failure_reason(const UpgradeLoadReport& r) {
  Reasons why;
  if (r.error != LoadError::None) why.add("{}: {}", to_string(r.error), r.error_detail);
  if (r.upgrades == 0) why.add("no upgrade was measured");
  if (r.failures > 0) why.add("{} failed connections", r.failures);
  return why.text;
}

std::string format_report(const UpgradeLoadReport& r) {
  std::string out = text_error(r.error, r.error_detail);
  if (r.seconds && r.upgrades_per_second)
    out += fmt::format("upgrades:      {} in {:.2f} s = {:.0f}/s (open + close)\n", r.upgrades, *r.seconds,
                       *r.upgrades_per_second);
  else
    out += fmt::format("upgrades:      {} (no measured window)\n", r.upgrades);
  out += fmt::format("failures:      {}\n", r.failures);
  if (r.server_cpu_seconds)
    out += fmt::format("server CPU:    {:.2f} s = {:.0f} upgrades per server-CPU-second\n", *r.server_cpu_seconds,
                       r.upgrades_per_server_cpu_second.value_or(0));
  return out;
}

std::string to_json(const UpgradeLoadReport& r) {
  return fmt::format(
      R"({{"scenario":"upgrades","error":"{}","error_detail":{},"seconds":{},"upgrades":{},"failures":{},)"
      R"("upgrades_per_second":{},"server_cpu_seconds":{},"upgrades_per_server_cpu_second":{}}})",
      to_string(r.error), json_string(r.error_detail), json_number(r.seconds, 4), r.upgrades, r.failures,
      json_number(r.upgrades_per_second, 1), json_number(r.server_cpu_seconds, 3),
      json_number(r.upgrades_per_server_cpu_second, 1));
}

}  // namespace conduit::load
