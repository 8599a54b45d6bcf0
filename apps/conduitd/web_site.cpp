#include "web_site.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "conduit/json_string.hpp"

namespace conduitd {
namespace {

// One URL as served: the bytes of its file, their type and their validator.
struct Page {
  std::string url;
  std::string_view content;
  std::string_view content_type;
  std::string etag;
};

// FNV-1a, 64 bits: a strong validator for content that only changes with the
// binary (a collision would need two builds with equal hashes on the same URL).
std::string etag_of(std::string_view content) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : content) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[17];
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, h >>= 4) hex[i] = digits[h & 0xf];
  hex[16] = '\0';
  return "\"" + std::string(hex) + "\"";
}

// If-None-Match holds the tag (or "*"): the browser's copy is current. Weak
// tags (W/"...") compare equal too, as RFC 9110 asks for If-None-Match.
bool matches_if_none_match(std::string_view header, std::string_view etag) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t comma = header.find(',', pos);
    std::string_view item = header.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.substr(0, 2) == "W/") item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// One sample line of the Prometheus text format: NAME[{L="V",...}] VALUE [TS].
struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string value;  // JSON: a number or null
};

bool parse_sample(std::string_view line, Sample& s) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s.name.assign(line.substr(0, i));
  s.labels.clear();
  if (s.name.empty()) return false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      std::string key(line.substr(i, eq - i));
      std::string value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value += line[j] == 'n' ? '\n' : line[j];  // the format escapes \\, \" and \n
        } else {
          value += line[j];
        }
      }
      if (j >= line.size()) return false;
      s.labels.emplace_back(std::move(key), std::move(value));
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  std::size_t end = line.find(' ', i);
  std::string text(line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
  if (text.empty()) return false;
  char* parsed_end = nullptr;
  const double v = std::strtod(text.c_str(), &parsed_end);
  if (parsed_end != text.c_str() + text.size()) return false;
  if (!std::isfinite(v)) {
    s.value = "null";
    return true;
  }
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest form, valid JSON
  if (ec != std::errc()) return false;
  s.value.assign(buf, ptr);
  return true;
}

}  // namespace

std::string_view content_type_for(std::string_view path) {
  if (ends_with(path, ".html")) return "text/html; charset=utf-8";
  if (ends_with(path, ".js") || ends_with(path, ".mjs")) return "text/javascript; charset=utf-8";
  if (ends_with(path, ".css")) return "text/css; charset=utf-8";
  if (ends_with(path, ".svg")) return "image/svg+xml";
  if (ends_with(path, ".png")) return "image/png";
  if (ends_with(path, ".ico")) return "image/x-icon";
  if (ends_with(path, ".json")) return "application/json";
  if (ends_with(path, ".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::string metrics_json(std::string_view text) {
  // Families in the order the text lists them; samples in their order.
  std::vector<std::string> order;
  std::map<std::string, std::string, std::less<>> families;  // name → "[...]" without the brackets
  Sample s;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty() || line.front() == '#' || !parse_sample(line, s)) continue;
    auto [it, inserted] = families.try_emplace(s.name);
    if (inserted) order.push_back(s.name);
    std::string& out = it->second;
    if (!out.empty()) out += ',';
    out += "{\"labels\":{";
    for (std::size_t i = 0; i < s.labels.size(); ++i) {
      if (i) out += ',';
      conduit::append_json_string(out, s.labels[i].first);
      out += ':';
      conduit::append_json_string(out, s.labels[i].second);
    }
    out += "},\"value\":" + s.value + "}";
  }
  std::string json = "{\"metrics\":{";
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i) json += ',';
    conduit::append_json_string(json, order[i]);
    json += ":[" + families.find(order[i])->second + "]";
  }
  json += "}}";
  return json;
}

void add_web_routes(conduit::Server& server) {
  std::vector<Page> pages;
  for (const EmbeddedFile& f : embedded_web_files()) {
    Page page{"/" + std::string(f.path), f.content, content_type_for(f.path), etag_of(f.content)};
    // The two pages also have short names: the chat is the site's root.
    if (f.path == "index.html") pages.push_back({"/", page.content, page.content_type, page.etag});
    if (f.path == "dashboard.html") pages.push_back({"/dashboard", page.content, page.content_type, page.etag});
    pages.push_back(std::move(page));
  }
  // One exact route per URL: any other path is the route table's own 404
  // (counted and logged like every refusal), and no prefix route shadows the
  // routes of other prefixes (the HTTP API's /api/).
  for (Page& p : pages) {
    std::string url = p.url;
    server.add_route(
        {"GET", std::move(url), conduit::PathMatch::Exact, [p = std::move(p)](const conduit::HttpRequest& req) {
           conduit::HttpResponse res;
           // Revalidated on every use (no-cache) rather than kept for a
           // time: the names carry no version, and a new conduitd serves
           // new files under the same names. A current copy costs a 304.
           res.cache_control = "no-cache";
           // Also in a 304: a cache updates its stored headers from it.
           res.content_type = std::string(p.content_type);
           res.headers.emplace_back("ETag", p.etag);
           res.headers.emplace_back("X-Content-Type-Options", "nosniff");
           if (matches_if_none_match(req.header("If-None-Match"), p.etag)) {
             res.status = 304;
             return res;
           }
           res.body = std::string(p.content);
           return res;
         }});
  }
  conduit::Server* srv = &server;
  server.add_route({"GET", "/stats", conduit::PathMatch::Exact, [srv](const conduit::HttpRequest&) {
                      conduit::HttpResponse res;
                      res.content_type = "application/json";
                      res.body = metrics_json(srv->metrics_text());
                      return res;
                    }});
}

}  // namespace conduitd
