// Channel names: charset, length, namespaces and per-namespace options.
#include <gtest/gtest.h>

#include <string>

#include "pubsub/channel_name.hpp"

namespace {

using namespace std::chrono_literals;
using conduit::pubsub::channel_namespace;
using conduit::pubsub::ChannelConfig;
using conduit::pubsub::ChannelNameError;
using conduit::pubsub::ChannelOptions;
using conduit::pubsub::is_valid_namespace_name;
using conduit::pubsub::validate_channel_name;

TEST(PubsubChannelName, AcceptsTheDocumentedCharset) {
  EXPECT_EQ(validate_channel_name("news", 255), ChannelNameError::none);
  EXPECT_EQ(validate_channel_name("chat:lobby", 255), ChannelNameError::none);
  EXPECT_EQ(validate_channel_name("user@example.com/inbox=1_a-b.c", 255), ChannelNameError::none);
  EXPECT_EQ(validate_channel_name("/room/1", 255), ChannelNameError::none);
  EXPECT_EQ(validate_channel_name("AZaz09", 255), ChannelNameError::none);
}

TEST(PubsubChannelName, RefusesEverythingElse) {
  EXPECT_EQ(validate_channel_name("", 255), ChannelNameError::empty);
  for (std::string bad : {"a b", "a*", "chat:*", "a\"b", "a\\b", "a\nb", "a#b", "caf\xc3\xa9", "a?b", "a%20"}) {
    EXPECT_EQ(validate_channel_name(bad, 255), ChannelNameError::bad_character) << bad;
  }
  EXPECT_EQ(validate_channel_name(std::string("a\0b", 3), 255), ChannelNameError::bad_character);
  EXPECT_EQ(validate_channel_name("\x7f", 255), ChannelNameError::bad_character);
}

TEST(PubsubChannelName, LengthLimit) {
  EXPECT_EQ(validate_channel_name(std::string(255, 'a'), 255), ChannelNameError::none);
  EXPECT_EQ(validate_channel_name(std::string(256, 'a'), 255), ChannelNameError::too_long);
  EXPECT_EQ(validate_channel_name("abcd", 3), ChannelNameError::too_long);
  EXPECT_EQ(to_string(ChannelNameError::too_long), "too_long");
  EXPECT_EQ(to_string(ChannelNameError::bad_character), "bad_character");
  EXPECT_EQ(to_string(ChannelNameError::empty), "empty");
}

TEST(PubsubChannelName, NamespaceIsThePartBeforeTheFirstColon) {
  EXPECT_EQ(channel_namespace("chat:lobby"), "chat");
  EXPECT_EQ(channel_namespace("chat:room:7"), "chat");
  EXPECT_EQ(channel_namespace("news"), "");
  EXPECT_EQ(channel_namespace(":x"), "");
  EXPECT_EQ(channel_namespace("x:"), "x");
}

TEST(PubsubChannelName, NamespaceNames) {
  EXPECT_TRUE(is_valid_namespace_name("chat"));
  EXPECT_FALSE(is_valid_namespace_name(""));
  EXPECT_FALSE(is_valid_namespace_name("a:b"));
  EXPECT_FALSE(is_valid_namespace_name("a b"));
}

TEST(PubsubChannelOptions, DefaultsAreTheDocumentedOnes) {
  const ChannelOptions o;
  EXPECT_EQ(o.history_size, 100u);
  EXPECT_EQ(o.history_ttl, 5min);
  EXPECT_EQ(o.max_subscriptions_per_connection, 128u);
  EXPECT_EQ(o.max_channel_length, 255u);
}

TEST(PubsubChannelOptions, NamespaceOverridesApplyKeyByKey) {
  ChannelConfig config;
  config.defaults.history_size = 50;
  config.namespaces["chat"].history_size = 0;
  config.namespaces["chat"].max_channel_length = 16;
  config.namespaces["metrics"].history_ttl = 10s;
  config.namespaces["metrics"].max_subscriptions_per_connection = 4;

  const ChannelOptions chat = config.resolve("chat:lobby");
  EXPECT_EQ(chat.history_size, 0u);
  EXPECT_EQ(chat.max_channel_length, 16u);
  EXPECT_EQ(chat.history_ttl, 5min);  // not overridden: the default
  EXPECT_EQ(chat.max_subscriptions_per_connection, 128u);

  const ChannelOptions metrics = config.resolve("metrics:cpu");
  EXPECT_EQ(metrics.history_size, 50u);
  EXPECT_EQ(metrics.history_ttl, 10s);
  EXPECT_EQ(metrics.max_subscriptions_per_connection, 4u);

  // Undeclared namespace, no namespace, and a name that merely starts like a
  // declared one: the defaults.
  for (const char* name : {"games:1", "news", "chatroom", "chat"}) {
    const ChannelOptions o = config.resolve(name);
    EXPECT_EQ(o.history_size, 50u) << name;
    EXPECT_EQ(o.max_channel_length, 255u) << name;
  }
}

}  // namespace
