#include "server/admission.hpp"

namespace conduit::server {

void Admission::reserve(const std::string& ip, std::size_t& open_before, std::size_t& from_ip_before) {
  open_before = open_.fetch_add(1, std::memory_order_relaxed);
  from_ip_before = 0;
  if (count_per_ip_) {
    std::lock_guard lock(ip_mu_);
    from_ip_before = per_ip_[ip]++;
  }
}

void Admission::release(const std::string& ip) {
  open_.fetch_sub(1, std::memory_order_relaxed);
  if (count_per_ip_) {
    std::lock_guard lock(ip_mu_);
    auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  }
}

}  // namespace conduit::server
