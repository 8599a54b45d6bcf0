#include "server/fanout.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "server/connection.hpp"
#include "server/loop.hpp"
#include "server/server_core.hpp"
#include "wire/deflate.hpp"
#include "wire/frame.hpp"

namespace conduit::server {
namespace {
// Batch buffers are large enough that a burst of small publications lands in
// one buffer, which each member's queue then references with one node.
constexpr std::size_t kBatchBufferBytes = 64 * 1024;

wire::Opcode opcode_of(MessageType type) {
  return type == MessageType::Text ? wire::Opcode::Text : wire::Opcode::Binary;
}
}  // namespace

// ---------------------------------------------------------------- SubscriberSet

void SubscriberSet::link(Membership& m) noexcept {
  m.prev = nullptr;
  m.next = head_;
  if (head_) head_->prev = &m;
  head_ = &m;
  size_.store(size_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void SubscriberSet::unlink(Membership& m) noexcept {
  if (m.prev) {
    m.prev->next = m.next;
  } else {
    head_ = m.next;
  }
  if (m.next) m.next->prev = m.prev;
  m.prev = m.next = nullptr;
  size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------- FanOut

FanOut::~FanOut() {
  if (batch_) batch_->release();
  for (auto& box : outbox_) {
    for (auto& r : box) r.buf->release();
  }
}

void FanOut::deliver(GroupState& group, net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end,
                     std::uint32_t messages, const Session* except) {
  // Compressed copies of this run, one per compression setting whose output
  // carries no per-peer context (built on first use, shared like buf).
  struct CompressedRun {
    int key;
    net::FrameBuffer* buf;
  };
  std::vector<CompressedRun> compressed;
  group.sets[loop_.index()].for_each([&](Connection& c) {
    if (c.state() != Connection::State::Open || &c == except) return;
    if (!c.compressed()) {
      c.deliver_shared(buf, begin, end, messages);
      return;
    }
    const int key = c.deflate()->stateless_key();
    if (key < 0) {
      // Context takeover: the peer's inflater holds this session's history,
      // so only this session's compressor can produce its bytes.
      wire::for_each_unmasked_frame(buf->data() + begin, end - begin, [&c](wire::Opcode op, bool, std::string_view p) {
        c.send(p, op == wire::Opcode::Text ? MessageType::Text : MessageType::Binary);
      });
      return;
    }
    auto it =
        std::find_if(compressed.begin(), compressed.end(), [key](const CompressedRun& r) { return r.key == key; });
    if (it == compressed.end()) {
      compressed.push_back({key, compress_run(*c.deflate(), buf->data() + begin, end - begin)});
      it = compressed.end() - 1;
    }
    c.deliver_shared(it->buf, 0, it->buf->size, messages);
  });
  for (auto& r : compressed) r.buf->release();
}

// The frames of a run, each message compressed as Connection::send would
// (messages under min_compress_bytes stay uncompressed), into a new buffer.
net::FrameBuffer* FanOut::compress_run(wire::PerMessageDeflate& deflate, const std::uint8_t* run, std::size_t len) {
  const std::size_t min_bytes = loop_.core().deflate_config().min_compress_bytes;
  std::string frames;
  static thread_local std::string payload;
  wire::for_each_unmasked_frame(run, len, [&](wire::Opcode op, bool, std::string_view p) {
    const bool compress = p.size() >= min_bytes;
    if (compress) {
      payload.clear();
      deflate.compress(reinterpret_cast<const std::uint8_t*>(p.data()), p.size(), payload);
      p = payload;
    }
    const std::size_t at = frames.size();
    frames.resize(at + wire::unmasked_frame_size(p.size()));
    wire::write_unmasked_frame(reinterpret_cast<std::uint8_t*>(frames.data()) + at, op, compress, p.data(), p.size());
  });
  net::FrameBuffer* out = net::FrameBuffer::create(frames.size());
  std::memcpy(out->data(), frames.data(), frames.size());
  out->size = static_cast<std::uint32_t>(frames.size());
  return out;
}

void FanOut::publish(const std::shared_ptr<GroupState>& group, std::string_view data, MessageType type,
                     const Session* except) {
  // Members join and leave on their own loops; a publication that does not
  // see a concurrent join is simply ordered before it.
  if (group->members.load(std::memory_order_relaxed) == 0) return;
  const std::size_t total = wire::unmasked_frame_size(data.size());
  if (!batch_ || batch_->room() < total) {
    if (batch_) batch_->release();
    batch_ = net::FrameBuffer::create(total > kBatchBufferBytes ? total : kBatchBufferBytes);
  }
  const std::uint32_t begin = batch_->size;
  batch_->size += static_cast<std::uint32_t>(
      wire::write_unmasked_frame(batch_->data() + begin, opcode_of(type), false, data.data(), data.size()));
  const std::uint32_t end = batch_->size;
  if (!group->sets[loop_.index()].empty()) deliver(*group, batch_, begin, end, 1, except);
  auto& loops = loop_.core().loops();
  if (loops.size() < 2) return;
  if (outbox_.size() != loops.size()) outbox_.resize(loops.size());
  for (std::size_t i = 0; i < outbox_.size(); ++i) {
    if (i == loop_.index() || group->sets[i].size() == 0) continue;
    auto& box = outbox_[i];
    if (!box.empty() && box.back().buf == batch_ && box.back().end == begin && box.back().group == group &&
        box.back().except == except) {
      box.back().end = end;
      ++box.back().messages;
    } else {
      batch_->add_ref();
      box.push_back({batch_, begin, end, 1, group, except});
    }
  }
}

bool FanOut::hand_off() {
  bool any = false;
  auto& loops = loop_.core().loops();
  for (std::size_t i = 0; i < outbox_.size(); ++i) {
    if (outbox_[i].empty()) continue;
    any = true;
    Loop* dest = loops[i].get();
    dest->post([dest, runs = std::move(outbox_[i])] {
      for (const FrameRun& r : runs) {
        dest->fanout().deliver(*r.group, r.buf, r.begin, r.end, r.messages, r.except);
        r.buf->release();
      }
    });
    outbox_[i].clear();
  }
  return any;
}

void publish_from_outside(ServerCore& core, const std::shared_ptr<GroupState>& group, std::string_view data,
                          MessageType type, const Session* except) {
  if (group->members.load(std::memory_order_relaxed) == 0) return;
  const std::size_t total = wire::unmasked_frame_size(data.size());
  net::FrameBuffer* buf = net::FrameBuffer::create(total);
  buf->size = static_cast<std::uint32_t>(
      wire::write_unmasked_frame(buf->data(), opcode_of(type), false, data.data(), data.size()));
  for (auto& l : core.loops()) {
    Loop* loop = l.get();
    if (group->sets[loop->index()].size() == 0) continue;
    buf->add_ref();
    loop->post([loop, buf, group, except] {
      loop->fanout().deliver(*group, buf, 0, buf->size, 1, except);
      buf->release();
    });
  }
  buf->release();
}

}  // namespace conduit::server
