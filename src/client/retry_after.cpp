#include "client/retry_after.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>
#include <vector>

namespace conduit::client_detail {

namespace {

constexpr std::chrono::seconds max_wait{86400};

// Splits on the separators of all three date forms: space, comma, '-', ':'.
std::vector<std::string_view> tokens(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size() && out.size() < 10) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '-' || text[i] == ':')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != ',' && text[i] != '-' && text[i] != ':') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

// A number of min..max digits, or -1.
int number(std::string_view s, std::size_t min_digits, std::size_t max_digits) {
  if (s.size() < min_digits || s.size() > max_digits) return -1;
  int value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return -1;
  return value;
}

// 1..12, or -1.
int month_of(std::string_view s) {
  static constexpr std::array<std::string_view, 12> names{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (s == names[i]) return static_cast<int>(i) + 1;
  }
  return -1;
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
  const std::vector<std::string_view> t = tokens(text);
  // t[0] is the weekday in every form; it is redundant and not checked.
  int day = -1, month = -1, year = -1, hour = -1, minute = -1, second = -1;
  if (t.size() == 8 && t[7] == "GMT") {
    // IMF-fixdate: wkday DD Mon YYYY hh mm ss GMT; RFC 850: weekday DD Mon YY hh mm ss GMT.
    day = number(t[1], 2, 2);
    month = month_of(t[2]);
    if (t[3].size() == 4) {
      year = number(t[3], 4, 4);
    } else if (const int yy = number(t[3], 2, 2); yy >= 0) {
      // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
      const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
      const int this_year = static_cast<int>(std::chrono::year_month_day(today).year());
      year = 2000 + yy;
      if (year > this_year + 50) year -= 100;
    }
    hour = number(t[4], 2, 2);
    minute = number(t[5], 2, 2);
    second = number(t[6], 2, 2);
  } else if (t.size() == 7) {
    // asctime: wkday Mon D hh mm ss YYYY (the day padded with a space).
    month = month_of(t[1]);
    day = number(t[2], 1, 2);
    hour = number(t[3], 2, 2);
    minute = number(t[4], 2, 2);
    second = number(t[5], 2, 2);
    year = number(t[6], 4, 4);
  }
  if (day < 0 || month < 0 || year < 0 || hour < 0 || minute < 0 || second < 0) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
         std::chrono::seconds(second);
}
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, std::string_view date_header,
                                                           std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    unsigned long long seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range)
      seconds = max_wait.count();
    else if (ec != std::errc{} || ptr != value.data() + value.size())
      return std::nullopt;
    return std::chrono::seconds(std::min<unsigned long long>(seconds, max_wait.count()));
  }
  const auto when = parse_http_date(value);
  if (!when) return std::nullopt;
  const auto from = parse_http_date(date_header).value_or(now);
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*when - from);
  return std::clamp<std::chrono::milliseconds>(wait, std::chrono::milliseconds{0}, max_wait);
}

}  // namespace conduit::client_detail
