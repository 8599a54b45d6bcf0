// A channel's history: the publications a subscriber that reconnects may have
// missed, so that it can resume exactly where it left off.
//
// Every publication gets the channel's next offset (1, 2, 3, ... in publish
// order, never reused while the history lives). The epoch names one life of
// the history: it is created with the channel and a new History (new epoch,
// offsets from 1 again) replaces it when the history is lost, e.g. when the
// process restarts. An (offset, epoch) pair is therefore a position a client
// can hand back later; the same offset under another epoch means nothing.
//
// Retention: the newest `max_entries` publications, further limited to those
// younger than `ttl` when ttl > 0. max_entries == 0 turns history off (offsets
// are still assigned, nothing is kept), so memory is always bounded by
// max_entries x the largest publication. bytes() reports what is held, for the
// history-bytes metric.
//
// Entries share the publication's serialized bytes: the buffer built once per
// publication (for instance the push frame every subscriber is sent) is held
// by reference, never copied. A History is owned by one thread (the loop that
// owns the channel); it does no locking of its own.
//
// Time is a parameter of every call that may expire entries, so that tests
// and the caller decide what "now" is; nothing here reads a clock or sleeps.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/pubsub.hpp"

namespace conduit::pubsub {

using HistoryClock = std::chrono::steady_clock;

struct HistoryLimits {
  std::size_t max_entries = 100;           // 0: history off
  std::chrono::milliseconds ttl{300'000};  // 0: no age limit (size limit only)
};

// The channel's current position (the public conduit::StreamPosition): the
// last offset assigned (0 before the first publication) and its epoch.
using StreamPosition = conduit::StreamPosition;

struct HistoryEntry {
  std::uint64_t offset = 0;
  HistoryClock::time_point appended_at;
  // Keeps `publication` alive; may hold more than the publication itself
  // (e.g. a whole WebSocket frame whose payload contains it).
  std::shared_ptr<const std::string> buffer;
  // The publication's JSON object, a view into *buffer.
  std::string_view publication;
};

struct RecoveryResult {
  // True when `publications` is exactly every publication after the client's
  // position, in order (possibly none). False: the history cannot say what
  // was missed; `publications` is empty and the client must reload.
  bool recovered = false;
  StreamPosition position;  // the channel's current position, either way
  std::vector<HistoryEntry> publications;
};

// A random epoch: 16 lowercase hex characters (64 bits from the OS random
// source, so two lives of a channel do not share an epoch in practice).
std::string make_epoch();

class History {
 public:
  History(HistoryLimits limits, std::string epoch);

  // The offset the next append() will assign: callers build the publication
  // (which carries its own offset) before appending it.
  std::uint64_t next_offset() const noexcept { return last_offset_ + 1; }
  StreamPosition position() const { return {last_offset_, epoch_}; }
  const std::string& epoch() const noexcept { return epoch_; }
  const HistoryLimits& limits() const noexcept { return limits_; }

  // Assigns next_offset() to the publication, keeps it if history is on,
  // drops what the limits no longer allow, and returns the offset.
  // `publication` must point into *buffer.
  std::uint64_t append(std::shared_ptr<const std::string> buffer, std::string_view publication,
                       HistoryClock::time_point now);

  // What a client at (since_offset, since_epoch) missed. Not recoverable when
  // the epoch differs, when since_offset is above the last offset, or when
  // the history no longer holds offset since_offset + 1. A client already at
  // the last offset recovers with nothing missed, even with history off.
  RecoveryResult recover(std::uint64_t since_offset, std::string_view since_epoch, HistoryClock::time_point now);

  // Starts another life: the given epoch and last offset, nothing held. (A
  // node of the Redis engine follows the channel's position in Redis.)
  void restart(std::string epoch, std::uint64_t last_offset);

  // The newest `limit` entries still held, oldest first.
  std::vector<HistoryEntry> newest(std::size_t limit, HistoryClock::time_point now);

  // Drops entries older than the TTL. Called by append/recover/newest; a
  // caller may also call it from a periodic sweep so idle channels shrink.
  void expire(HistoryClock::time_point now);

  std::size_t size() const noexcept { return entries_.size(); }
  // Bytes held alive by the entries (buffer sizes plus per-entry bookkeeping).
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  static std::size_t entry_bytes(const HistoryEntry& e) noexcept;
  void pop_front();

  HistoryLimits limits_;
  std::string epoch_;
  std::uint64_t last_offset_ = 0;
  std::deque<HistoryEntry> entries_;  // ascending, contiguous offsets
  std::size_t bytes_ = 0;
};

}  // namespace conduit::pubsub
